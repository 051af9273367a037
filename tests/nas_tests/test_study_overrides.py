"""Studies written with the older space-override names (``num_classes``, ``vocab_size``) are
the same studies as with ``num_outputs``: same space fingerprint (the values pinned below were
computed before the rename), an older store resumes with the renamed file, a conflict is one
clear error."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from nas.api import study_file_text
from nas.storage import open_store
from nas.study import Study, StudyFileError, load_study, same_study_text
from nas.study_context import open_study
from nas.supernet import space_fingerprint
from search_spaces import get_space

REPO = Path(__file__).resolve().parents[2]
QUICKSTART = REPO / "studies" / "quickstart.py"

#: `space_fingerprint` of each study's space at the commit before the rename
#: (ccfd1f0, whose study files spelled the image output size ``num_classes``)
FINGERPRINTS = {
    "cifar10_subset": "bafdb23a2fc9da74",
    "mnist_hybrid": "9293eb127d7bc5a1",
    "quickstart": "2d1bc2e06c1e0aa5",
    "shakespeare_lm": "6ddba5a532a709b8",
}
#: sha256 of studies/quickstart.py at that commit (the text `old_quickstart` rebuilds)
OLD_QUICKSTART_SHA256 = "bfcbd4e36a3c64c395d71d0fbe8b1d45016abe242b742e051f3b0db24e113581"


def old_quickstart() -> str:
    """studies/quickstart.py as it was before the rename."""
    text = QUICKSTART.read_text()
    assert text.count('"num_outputs": 10,') == 1
    return text.replace('"num_outputs": 10,', '"num_classes": 10,')


@pytest.mark.parametrize("name", sorted(FINGERPRINTS))
def test_study_spaces_keep_their_fingerprints(name):
    study = load_study(REPO / "studies" / f"{name}.py")
    assert not {"num_classes", "vocab_size"} & set(study.space_overrides)
    assert space_fingerprint(study.build_space()) == FINGERPRINTS[name]


def test_old_and_new_spelling_are_one_study(tmp_path):
    text = old_quickstart()
    assert hashlib.sha256(text.encode()).hexdigest() == OLD_QUICKSTART_SHA256
    old_file, new_file = tmp_path / "old.py", tmp_path / "new.py"
    old_file.write_text(text)
    new_file.write_text(QUICKSTART.read_text())
    old, new = load_study(old_file), load_study(new_file)
    assert old == new
    assert old.space_overrides == new.space_overrides
    assert list(old.space_overrides)[1] == "num_outputs"  # canonical, in its place
    assert space_fingerprint(old.build_space()) == space_fingerprint(new.build_space()) == (
        FINGERPRINTS["quickstart"])
    # a stored config of an older study (its raw overrides) builds the same space
    raw = {**new.space_overrides}
    raw["num_classes"] = raw.pop("num_outputs")
    assert space_fingerprint(get_space("hybrid_vit_tiny", **raw)) == FINGERPRINTS["quickstart"]


def test_same_study_text():
    old, new = old_quickstart(), QUICKSTART.read_text()
    assert same_study_text(old, new) and same_study_text(new, old)
    # any other change is a change: a value, a comment, a key that is no alias
    assert not same_study_text(old, new.replace('"num_outputs": 10,', '"num_outputs": 8,'))
    assert not same_study_text(old, new.replace("# 2x2 patches", "# two-by-two patches"))
    assert not same_study_text(old, new.replace('"head_dim": 8', '"head_dim": 16'))
    assert not same_study_text(old, new.replace("(8, 12, 16)", "(8, 12)"))
    assert not same_study_text(old, "study = (")  # does not parse
    # ``dict(...)`` and a module-level name bound to the overrides
    call = 'Study(name="x", space="s", space_overrides=dict(in_channels=1, {}=10))\n'
    assert same_study_text(call.format("num_classes"), call.format("num_outputs"))
    assert not same_study_text(call.format("num_classes"), call.format("in_channels"))
    bound = 'O = {{"{}": 10}}\nstudy = Study(name="x", space="s", space_overrides=O)\n'
    assert same_study_text(bound.format("vocab_size"), bound.format("num_outputs"))
    # only space overrides are read: the same key elsewhere is a change
    other = 'f(num_outputs=1)\n'
    assert not same_study_text(other, other.replace("num_outputs", "num_classes"))
    # a Study object's file (`nas.open_study(Study(...))` writes its repr)
    study = load_study(QUICKSTART)
    written = study_file_text(study)
    assert "'num_outputs': 10" in written
    assert same_study_text(written.replace("'num_outputs'", "'num_classes'"), written)


def test_conflicting_spellings_are_one_clear_error(tmp_path):
    with pytest.raises(ValueError, match="'num_classes'=10 and 'num_outputs'=4"):
        Study(name="x", space="hybrid_vit_tiny", data=lambda: None,
              space_overrides={"num_classes": 10, "num_outputs": 4})
    path = tmp_path / "both.py"
    path.write_text(QUICKSTART.read_text().replace('"num_outputs": 10,',
                                                   '"num_outputs": 10, "num_classes": 4,'))
    with pytest.raises(StudyFileError) as info:
        load_study(path)
    message = str(info.value)
    assert "'num_classes'" in message and "'num_outputs'" in message
    assert f"{path}:" in message and len(message.splitlines()) == 1


def test_older_store_resumes_with_the_renamed_file(tmp_path):
    """A store created from the older quickstart, with results, opens with the renamed file
    without --force (what `nas run` does first), and its record takes the new file; a real
    change still needs --force."""
    path = tmp_path / "quickstart.py"
    old_text = old_quickstart()
    path.write_text(old_text)
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    with open_store(url) as store:
        # what the older version stored: the raw overrides and the file's text and hash
        raw = {**load_study(QUICKSTART).space_overrides}
        raw = {("num_classes" if k == "num_outputs" else k): v for k, v in raw.items()}
        store.create_or_get_study(name="quickstart", space="hybrid_vit_tiny",
                                  space_overrides=raw, study_path=str(path),
                                  study_text=old_text, study_hash=OLD_QUICKSTART_SHA256)
        store.put_stage_status(study="quickstart", stage="train", status="done")
        record = store.get_study(name="quickstart")
        assert "num_classes" in record.space_overrides
        assert space_fingerprint(get_space(record.space, **record.space_overrides)) == (
            FINGERPRINTS["quickstart"])

        path.write_text(QUICKSTART.read_text())
        ctx = open_study(path, store=store, runs_root=tmp_path / "runs")
        assert ctx.space_key() == f"hybrid_vit_tiny:{FINGERPRINTS['quickstart']}"
        record = store.get_study(name="quickstart")
        assert record.study_text == QUICKSTART.read_text()
        assert record.study_hash == hashlib.sha256(QUICKSTART.read_bytes()).hexdigest()
        assert "num_outputs" in record.space_overrides
        assert "num_classes" not in record.space_overrides
        assert [s.status for s in store.stages(study="quickstart")] == ["done"]

        path.write_text(old_text)  # and back: still the same study
        open_study(path, store=store, runs_root=tmp_path / "runs")
        path.write_text(old_text.replace("steps=400", "steps=500"))
        with pytest.raises(ValueError, match="changed since the study was created"):
            open_study(path, store=store, runs_root=tmp_path / "runs")


def test_export_reads_an_alias_only_change_as_unchanged(tmp_path):
    """`nas export` from the store re-measures the model only with the study file in hand:
    a file renamed to num_outputs still counts as the stored one."""
    from nas.export.bundle import _study_context

    path = tmp_path / "quickstart.py"
    path.write_text(QUICKSTART.read_text())
    with open_store(f"sqlite:///{tmp_path / 'db.sqlite'}") as store:
        record = store.create_or_get_study(
            name="quickstart", space="hybrid_vit_tiny", study_path=str(path),
            study_text=old_quickstart(), study_hash=OLD_QUICKSTART_SHA256)
        ctx = _study_context(store, record, tmp_path / "runs" / "quickstart" / "supernet" / "x")
        assert ctx is not None and ctx.study == load_study(QUICKSTART)
        path.write_text(QUICKSTART.read_text().replace("steps=400", "steps=500"))
        assert _study_context(store, record, tmp_path / "x" / "y" / "z") is None
