"""Checkpoints: exact round trips, refusal of corrupt/foreign/malicious files, atomic saves."""

from __future__ import annotations

import math
import pickle
import tempfile
from pathlib import Path

import pytest
import torch

from pyro_bbb import BayesianMLP, Categorical, Gaussian, MeanFieldGuide, predict
from pyro_bbb.checkpoint import (
    FORMAT,
    VERSION,
    CheckpointError,
    check_compatible,
    load_checkpoint,
    save_checkpoint,
)


def _fitted(model: BayesianMLP) -> MeanFieldGuide:
    """A guide whose parameters are moved away from their initial values."""
    torch.manual_seed(0)
    guide = MeanFieldGuide(model)
    with torch.no_grad():
        for param in guide.parameters():
            param.add_(0.1 * torch.randn_like(param))
    return guide


@pytest.fixture
def regression():
    model = BayesianMLP([2, 8, 1], Gaussian(), activation="tanh")
    return model, _fitted(model)


@pytest.fixture
def classifier():
    model = BayesianMLP([3, 6, 4], Categorical(4))
    return model, _fitted(model)


@pytest.fixture
def saved(tmp_path, regression) -> Path:
    model, guide = regression
    return save_checkpoint(tmp_path / "model.pt", model, guide, {"note": "v1"})


def _predict(model, guide, x):
    return predict(model, guide, x, num_samples=20, generator=torch.Generator().manual_seed(3))


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("which", ["regression", "classifier"])
def test_round_trip_gives_identical_parameters_and_predictions(tmp_path, which, request):
    model, guide = request.getfixturevalue(which)
    metadata = {"epochs": 3, "lr": 1e-3, "tags": ["a", None, True], "nested": {"x": [1.5]}}
    path = save_checkpoint(tmp_path / "ckpt.pt", model, guide, metadata)
    loaded = load_checkpoint(path)
    assert loaded.model.spec() == model.spec()
    assert loaded.metadata == metadata and loaded.path == path
    state, loaded_state = guide.state_dict(), loaded.guide.state_dict()
    assert state.keys() == loaded_state.keys()
    assert all(torch.equal(state[k], loaded_state[k]) for k in state)
    x = torch.randn(7, model.input_size)
    before, after = _predict(model, guide, x), _predict(loaded.model, loaded.guide, x)
    for name, value in vars(before).items():
        if torch.is_tensor(value):
            assert torch.equal(value, getattr(after, name)), name


def test_training_state_round_trip(tmp_path, regression):
    from pyro_bbb import fit

    model, guide = regression
    x, y = torch.randn(20, 2), torch.randn(20)
    state = fit(model, guide, x, y, epochs=2, batch_size=10, progress=False, device="cpu").state
    path = save_checkpoint(tmp_path / "ckpt.pt", model, guide, training_state=state)
    loaded = load_checkpoint(path).training_state
    assert (loaded.epoch, loaded.step, loaded.history) == (2, 4, state.history)
    saved_params = load_checkpoint(path).guide.state_dict()
    assert all(torch.equal(saved_params[k], v) for k, v in state.guide_state.items())
    assert all(torch.equal(loaded.guide_state[k], v) for k, v in state.guide_state.items())
    opt, loaded_opt = state.optimizer_state, loaded.optimizer_state
    assert opt["param_groups"] == loaded_opt["param_groups"]
    assert all(torch.equal(opt["state"][i]["exp_avg_sq"], loaded_opt["state"][i]["exp_avg_sq"])
               for i in opt["state"])


def test_checkpoint_without_training_state_loads_with_none(saved):
    assert load_checkpoint(saved).training_state is None


def test_loading_leaves_the_global_rng_alone(saved):
    state = torch.get_rng_state()
    load_checkpoint(saved)
    assert torch.equal(state, torch.get_rng_state())


def test_load_into_a_given_compatible_model(saved, regression):
    model, guide = regression
    fresh = BayesianMLP([2, 8, 1], Gaussian(), activation="tanh")
    loaded = load_checkpoint(saved, model=fresh)
    assert loaded.model is fresh
    assert torch.equal(loaded.guide.locs()["layer0.weight"], guide.locs()["layer0.weight"])


def test_file_on_disk_is_the_documented_plain_dict(saved, regression):
    payload = torch.load(saved, weights_only=True)
    assert payload["format"] == FORMAT and payload["version"] == VERSION
    assert payload["model_spec"] == regression[0].spec()
    assert set(payload["guide_state"]) == set(regression[1].state_dict())
    assert payload["guide_init"]["kind"] == "mean_field"


# --------------------------------------------------------------------------- bad files


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="checkpoint not found: .*nothing.pt"):
        load_checkpoint(tmp_path / "nothing.pt")


@pytest.mark.parametrize("keep", [0, 10, 0.5, -1])
def test_truncated_file_is_refused_with_its_path(tmp_path, saved, keep):
    data = saved.read_bytes()
    cut = tmp_path / "cut.pt"
    cut.write_bytes(data[: int(len(data) * keep) if isinstance(keep, float) else keep])
    with pytest.raises(CheckpointError, match=r"cut.pt is not a readable pyro_bbb checkpoint"):
        load_checkpoint(cut)


def test_garbage_bytes_are_refused(tmp_path):
    path = tmp_path / "noise.pt"
    path.write_bytes(bytes(range(256)) * 10)
    with pytest.raises(CheckpointError, match="noise.pt is not a readable pyro_bbb checkpoint"):
        load_checkpoint(path)


def test_flipped_bytes_in_the_payload_are_refused(tmp_path, saved):
    data = bytearray(saved.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 64] = bytes(64)
    path = tmp_path / "flipped.pt"
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="flipped.pt"):
        load_checkpoint(path)


def test_plain_state_dict_is_not_a_checkpoint(tmp_path, regression):
    path = tmp_path / "state.pt"
    torch.save(regression[1].state_dict(), path)
    with pytest.raises(CheckpointError, match="state.pt is not a pyro_bbb checkpoint"):
        load_checkpoint(path)


def test_other_format_tag_is_refused(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"format": "someone.else", "version": 1}, path)
    with pytest.raises(CheckpointError, match="format 'someone.else'"):
        load_checkpoint(path)


def _rewrite(saved: Path, tmp_path: Path, **changes) -> Path:
    payload = torch.load(saved, weights_only=True)
    payload.update(changes)
    path = tmp_path / "edited.pt"
    torch.save(payload, path)
    return path


def test_unsupported_version(tmp_path, saved):
    path = _rewrite(saved, tmp_path, version=VERSION + 1)
    with pytest.raises(CheckpointError, match=f"version {VERSION + 1}.*reads version {VERSION}"):
        load_checkpoint(path)


def test_guide_state_with_missing_and_unexpected_keys(tmp_path, saved):
    state = torch.load(saved, weights_only=True)["guide_state"]
    del state["rho.layer1__bias"]
    state["loc.extra"] = torch.zeros(3)
    path = _rewrite(saved, tmp_path, guide_state=state)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert "missing keys ['rho.layer1__bias']" in message
    assert "unexpected keys ['loc.extra']" in message
    assert "2-8-1 tanh" in message


def test_guide_state_with_wrong_shape(tmp_path, saved):
    state = torch.load(saved, weights_only=True)["guide_state"]
    state["loc.layer0__weight"] = torch.zeros(9, 2)
    with pytest.raises(CheckpointError, match=r"loc.layer0__weight has shape \(9, 2\), expected "
                                              r"\(8, 2\)"):
        load_checkpoint(_rewrite(saved, tmp_path, guide_state=state))


def test_invalid_model_spec(tmp_path, saved):
    path = _rewrite(saved, tmp_path, model_spec={"layer_sizes": [2, 1]})
    with pytest.raises(CheckpointError, match="invalid model spec"):
        load_checkpoint(path)


class _Payload:
    """Pickles to a call of exec that would create ``marker`` when unpickled."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return exec, (f"open({str(self.marker)!r}, 'w').write('pwned')",)


def test_pickle_bomb_is_refused_and_its_code_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"format": FORMAT, "version": VERSION, "model_spec": _Payload(marker)}, path)
    with pytest.raises(CheckpointError, match="refused so that loading cannot run code"):
        load_checkpoint(path)
    assert not marker.exists()
    # The bomb is real: an unrestricted unpickler would have run it.
    with open(path, "rb"):
        torch.load(path, weights_only=False)
    assert marker.read_text() == "pwned"


def test_raw_pickle_bomb_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps(_Payload(marker)))
    with pytest.raises(CheckpointError, match="evil.pkl"):
        load_checkpoint(path)
    assert not marker.exists()


# --------------------------------------------------------------------------- architectures


def test_mismatched_architecture_names_both(saved):
    other = BayesianMLP([2, 16, 1], Gaussian(), activation="tanh")
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(saved, model=other)
    message = str(info.value)
    assert "2-8-1 tanh" in message and "2-16-1 tanh" in message and "model.pt" in message


@pytest.mark.parametrize(
    "model",
    [
        BayesianMLP([2, 8, 1], Gaussian(), activation="relu"),
        BayesianMLP([2, 8, 1], Gaussian(noise=0.1), activation="tanh"),
        BayesianMLP([2, 8, 2], Categorical(2), activation="tanh"),
    ],
)
def test_check_compatible_rejects_other_activation_or_likelihood(saved, model):
    with pytest.raises(CheckpointError, match="does not match"):
        check_compatible(load_checkpoint(saved), model)


def test_check_compatible_allows_another_prior(saved):
    from pyro_bbb import gaussian_prior

    same_shape = BayesianMLP([2, 8, 1], Gaussian(), gaussian_prior(0.3), activation="tanh")
    check_compatible(load_checkpoint(saved), same_shape)


# --------------------------------------------------------------------------- saving


def test_save_refuses_a_guide_of_another_model(tmp_path, regression, classifier):
    with pytest.raises(CheckpointError, match="guide state does not match"):
        save_checkpoint(tmp_path / "x.pt", regression[0], classifier[1])
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "metadata, where",
    [
        ({"t": torch.zeros(2)}, "metadata['t'] holds a Tensor"),
        ({"a": {"b": [1, object()]}}, "metadata['a']['b'][1] holds a object"),
        ({1: "x"}, "non-string key 1"),
        ({"p": Path("/tmp")}, "holds a PosixPath"),
    ],
)
def test_metadata_must_be_json_like(tmp_path, regression, metadata, where):
    with pytest.raises(CheckpointError) as info:
        save_checkpoint(tmp_path / "x.pt", *regression, metadata)
    assert where in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_failed_save_keeps_the_old_checkpoint_and_leaves_no_temp_file(
    tmp_path, saved, classifier, monkeypatch
):
    original = saved.read_bytes()

    def failing_save(obj, handle, *args, **kwargs):
        handle.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(saved, *classifier)
    monkeypatch.undo()
    assert saved.read_bytes() == original
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]
    assert load_checkpoint(saved).metadata == {"note": "v1"}


def test_save_replaces_an_existing_checkpoint(tmp_path, saved, classifier):
    save_checkpoint(saved, *classifier, {"note": "v2"})
    loaded = load_checkpoint(saved)
    assert loaded.metadata == {"note": "v2"} and loaded.model.layer_sizes == [3, 6, 4]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]


def test_save_into_missing_directory(tmp_path, regression):
    with pytest.raises(CheckpointError, match=r"to .*no/x.pt: directory .*no does not exist"):
        save_checkpoint(tmp_path / "no" / "x.pt", *regression)


@pytest.mark.parametrize("content", [b"x", b"a,b\n1,2\n", None])
def test_save_never_overwrites_a_file_that_is_not_a_checkpoint(tmp_path, regression, content):
    path = tmp_path / "data.csv"
    if content is None:  # a torch file that is not ours
        torch.save({"weights": torch.ones(2)}, path)
    else:
        path.write_bytes(content)
    before = path.read_bytes()
    with pytest.raises(CheckpointError, match=r"refusing to overwrite .*data.csv: it exists and "
                                              r"is not a readable pyro_bbb checkpoint"):
        save_checkpoint(path, *regression)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["data.csv"]


def test_save_may_fill_an_empty_file(tmp_path, regression):
    path = tmp_path / "empty.pt"
    path.touch()
    save_checkpoint(path, *regression, {"n": 1})
    assert load_checkpoint(path).metadata == {"n": 1}


def test_save_to_a_directory_names_it(tmp_path, regression):
    folder = tmp_path / "runs"
    folder.mkdir()
    with pytest.raises(CheckpointError, match=r"runs is a directory"):
        save_checkpoint(folder, *regression)
    assert list(folder.iterdir()) == []


@pytest.mark.parametrize("path, message", [("", "checkpoint path is empty"),
                                           (None, "must be a str or os.PathLike, got NoneType")])
def test_save_and_load_refuse_an_empty_or_missing_path(regression, path, message):
    with pytest.raises(CheckpointError, match=message):
        save_checkpoint(path, *regression)
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(path)


def test_save_into_unwritable_directory_names_the_target(tmp_path, regression, monkeypatch):
    def denied(dir, prefix, suffix):
        raise PermissionError(13, "Permission denied", f"{dir}/{prefix}abc{suffix}")

    monkeypatch.setattr(tempfile, "mkstemp", denied)
    with pytest.raises(CheckpointError) as info:
        save_checkpoint(tmp_path / "x.pt", *regression)
    message = str(info.value)
    assert "x.pt: Permission denied" in message and ".tmp" not in message
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"training_state": {"epoch": 1}}, "training_state must be a TrainingState, got dict"),
        ({"metadata": [1, 2]}, "metadata must be a dict with str keys, got list"),
        ({"metadata": [("a", 1)]}, "metadata must be a dict with str keys, got list"),
        ({"guide": None}, "guide must be a MeanFieldGuide, got NoneType"),
    ],
)
def test_save_refuses_wrong_argument_types(tmp_path, regression, kwargs, message):
    model, guide = regression
    args = {"model": model, "guide": guide, **kwargs}
    with pytest.raises(CheckpointError, match=message):
        save_checkpoint(tmp_path / "x.pt", **args)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_save_refuses_non_finite_parameters(tmp_path, saved, regression, bad):
    model, guide = regression
    original = saved.read_bytes()
    with torch.no_grad():
        guide.loc["layer1__bias"][0] = bad
    with pytest.raises(CheckpointError, match=r"loc.layer1__bias holds NaN or inf values"):
        save_checkpoint(saved, model, guide)
    assert saved.read_bytes() == original


def test_load_refuses_non_finite_parameters_naming_the_key(tmp_path, saved):
    state = torch.load(saved, weights_only=True)["guide_state"]
    state["rho.layer0__weight"][1, 1] = math.nan
    with pytest.raises(CheckpointError, match=r"edited.pt.*rho.layer0__weight holds NaN or inf"):
        load_checkpoint(_rewrite(saved, tmp_path, guide_state=state))


@pytest.mark.parametrize("device", ["gpu", "cuda:x", "nonsense"])
def test_invalid_map_location_is_named_before_reading(saved, device):
    with pytest.raises(ValueError, match=f"map_location '{device}' is not a valid device") as info:
        load_checkpoint(saved, map_location=device)
    assert not isinstance(info.value, CheckpointError)
    assert load_checkpoint(saved, map_location="cpu").metadata == {"note": "v1"}


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
@pytest.mark.parametrize("device", ["cuda", torch.device("cuda", 0)])
def test_unavailable_cuda_map_location_is_not_called_corrupt(saved, device):
    with pytest.raises(ValueError, match=r"map_location '(cuda|cuda:0)' is not available on this "
                                         r"machine") as info:
        load_checkpoint(saved, map_location=device)
    assert "corrupt" not in str(info.value)
    assert load_checkpoint(saved, map_location="cpu").metadata == {"note": "v1"}
