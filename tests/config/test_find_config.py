"""One name resolution for `base:`, a search's `choice:` and the command line's CONFIG
(`loader.find_config`): a YAML file relative to the referring file's folder (the working
directory for the command line) when it exists, else a shipped config by its bare name;
one error wording wherever the name was written. Real files in a user's own folder."""

import shutil

import pytest
from conftest import CONFIGS

from cnn_cifar.config.errors import ConfigError
from cnn_cifar.config.loader import find_config, load_config, shipped_configs, to_dict

WHAT = "a config is a .yaml or .yml file, or a shipped config by name ("


def refusal(path, overrides=()) -> str:
    with pytest.raises(ConfigError) as e:
        load_config(path, list(overrides))
    assert "\n" not in str(e.value)
    return str(e.value)


def test_a_shipped_config_copied_into_a_users_folder_still_loads(tmp_path):
    """two_conv.yaml says `base: one_conv.yaml`: copied alone, its base is the shipped one
    (before: "base: one_conv.yaml not found next to two_conv.yaml")."""
    copied = tmp_path / "two_conv.yaml"
    shutil.copy(CONFIGS / "two_conv.yaml", copied)
    assert to_dict(load_config(copied)) == to_dict(load_config("two_conv"))


@pytest.mark.parametrize("base", ["two_conv", "two_conv.yaml"])
def test_a_base_by_its_bare_name_is_the_shipped_config(tmp_path, base):
    mine = tmp_path / "my_struct.yaml"
    mine.write_text(f"base: {base}\nname: mine\nset: {{conv2.kernel: 5}}\n")
    cfg = load_config(mine)
    shipped = load_config("two_conv", ["conv2.kernel=5"])
    assert cfg.name == "mine" and cfg.model == shipped.model and cfg.train == shipped.train


def test_a_file_next_to_the_config_wins_over_a_shipped_one(tmp_path):
    text = (CONFIGS / "one_conv.yaml").read_text()
    (tmp_path / "one_conv.yaml").write_text(text.replace("seed: 15", "seed: 7"))
    shutil.copy(CONFIGS / "two_conv.yaml", tmp_path / "two_conv.yaml")
    assert load_config(tmp_path / "two_conv.yaml").train.seed == 7
    assert load_config("two_conv").train.seed == 15


def test_relative_and_absolute_bases_work_as_before(tmp_path):
    (tmp_path / "common").mkdir()
    (tmp_path / "runs").mkdir()
    shutil.copy(CONFIGS / "one_conv.yaml", tmp_path / "common" / "base.yaml")
    (tmp_path / "runs" / "a.yaml").write_text("base: ../common/base.yaml\nname: a\n")
    (tmp_path / "runs" / "b.yaml").write_text(f"base: {tmp_path / 'common' / 'base.yaml'}\nname: b\n")
    (tmp_path / "common" / "c.yml").write_text("base: base.yaml\nname: c\n")
    (tmp_path / "runs" / "d.yaml").write_text("base: ../common/c.yml\nname: d\n")
    one = to_dict(load_config("one_conv"))["model"]
    for name in ("a", "b", "d"):
        assert to_dict(load_config(tmp_path / "runs" / f"{name}.yaml"))["model"] == one


def test_a_base_chain_through_shipped_configs_is_not_circular(tmp_path):
    """A user's two_conv.yaml that extends the shipped two_conv (by its bare name; no file
    `two_conv` is here) is not its own base; naming its own file is."""
    mine = tmp_path / "two_conv.yaml"
    mine.write_text("base: two_conv\nname: mine\n")
    assert load_config(mine).model == load_config("two_conv").model
    mine.write_text("base: two_conv.yaml\nname: mine\n")
    assert refusal(mine) == f"{mine}: base: circular base: chain"


def test_a_circle_of_two_files_is_refused(tmp_path):
    (tmp_path / "a.yaml").write_text("base: b.yaml\nname: a\n")
    (tmp_path / "b.yaml").write_text("base: a.yaml\nname: b\n")
    assert refusal(tmp_path / "a.yaml") == f"{tmp_path / 'a.yaml'}: base: circular base: chain"


def test_a_base_that_is_not_found_names_the_file_tried_and_the_shipped_names(tmp_path):
    """Before: "my_struct.yaml: base: two_cnv not found next to my_struct.yaml"."""
    mine = tmp_path / "my_struct.yaml"
    mine.write_text("base: two_cnv\nname: mine\n")
    names = ", ".join(shipped_configs())
    assert refusal(mine) == f"{mine}: base: {tmp_path / 'two_cnv'}: no such config file; {WHAT}{names})"


def test_a_base_that_is_not_yaml_is_refused_before_it_is_read(tmp_path):
    (tmp_path / "notes.txt").write_text("name: t\n")
    mine = tmp_path / "my.yaml"
    mine.write_text("base: notes.txt\nname: mine\n")
    assert refusal(mine).startswith(f"{mine}: base: {tmp_path / 'notes.txt'}: not a config; {WHAT}")


def test_the_command_lines_config_reads_the_same_way(tmp_path, monkeypatch):
    """The working directory is the folder of the command line's CONFIG; the wording is the
    same as for a base, the name being its own file."""
    monkeypatch.chdir(tmp_path)
    names = ", ".join(shipped_configs())
    assert refusal("two_cnv") == f"two_cnv: no such config file; {WHAT}{names})"
    (tmp_path / "notes.txt").write_text("name: t\n")
    assert refusal("notes.txt") == f"notes.txt: not a config; {WHAT}{names})"
    shutil.copy(CONFIGS / "one_conv.yaml", tmp_path / "mine.yml")
    assert find_config("mine.yml") == tmp_path.joinpath("mine.yml").relative_to(tmp_path)
