"""Features copied stage by stage: what each arm copies, freezes and trains, and the reading."""

import dataclasses

import numpy as np
import pytest

from tlhelpers import cli, transferability as tr

TINY = tr.TransferabilityConfig(filters=(4, 4, 8, 8, 8), source_per_class=12, target_per_class=6,
                                validation_per_class=4, test_per_class=8, base_epochs=1, epochs=1,
                                matched_per_class=6, matched_epochs=1, stages=(1, 5), seeds=(0, 1))


@pytest.fixture(scope="module")
def tiny():
    tasks = tr.load_tasks(TINY)
    bases, scratch = tr.train_bases(TINY, tasks, verbose=0)
    return tasks, bases, scratch


def test_tasks_have_the_requested_images_and_disjoint_validation(tiny):
    tasks, _, _ = tiny
    assert tasks["A"][0].shape == (60, 32, 32, 1) and tasks["B"][0].shape == (30, 32, 32, 1)
    assert np.bincount(tasks["B"][1]).tolist() == [6] * 5 and np.bincount(tasks["B_test"][1]).tolist() == [8] * 5
    assert 0.0 <= tasks["B"][0].min() and tasks["B"][0].max() <= 1.0
    train = {image.tobytes() for image in tasks["B"][0]}
    assert not train & {image.tobytes() for image in tasks["B_validation"][0]}
    assert tasks["classes"]["A"] != tasks["classes"]["B"]
    # The size-matched pair: as many garments as digits 0-4, in the same clutter and format.
    assert tasks["S"][0].shape == tasks["D"][0].shape == (30, 32, 32, 1)
    assert np.bincount(tasks["D"][1]).tolist() == [6] * 5 and tasks["classes"]["D"] == ["0", "1", "2", "3", "4"]
    np.testing.assert_array_equal(tasks["S"][0], tasks["A"][0][np.concatenate([np.arange(6) + 12 * c for c in range(5)])])
    assert tasks["D"][0].mean() > 0.05  # digits on a cluttered canvas, not blank
    assert "D" not in tr.load_tasks(dataclasses.replace(TINY, arms=("transfer_frozen",)))
    assert {"A", "S", "D"}.isdisjoint(tr.load_tasks(dataclasses.replace(TINY, arms=("random_frozen",))))


@pytest.mark.parametrize("arm", list(tr.ARMS))
def test_each_arm_copies_the_right_stages_and_freezes_only_when_asked(arm, tiny, monkeypatch):
    tasks, bases, _ = tiny
    built = {}
    original = tr._train

    def keep(model, *args):
        built["model"] = model
        built["before"] = [w.copy() for w in model.get_weights()]
        return original(model, *args)

    monkeypatch.setattr(tr, "_train", keep)
    row = tr.transfer_run(TINY, tasks, bases, arm, 3, seed=0)
    copied_from, trainable = tr.ARMS[arm]
    model = built["model"]
    for stage in range(1, 6):
        layer = model.get_layer(f"stage{stage}_conv")
        index = [i for i, w in enumerate(model.weights) if w is layer.kernel][0]
        kernel_before = built["before"][index]
        if stage <= 3 and copied_from is not None:
            source = bases[copied_from].get_layer(layer.name).get_weights()[0]
            np.testing.assert_array_equal(kernel_before, source)
        if stage > 3 or copied_from is None:
            assert not np.array_equal(kernel_before, bases["A"].get_layer(layer.name).get_weights()[0])
        assert layer.trainable == (stage > 3 or trainable)
        if not layer.trainable:
            np.testing.assert_array_equal(layer.get_weights()[0], kernel_before)
    assert row["arm"] == arm and row["k"] == 3 and 0.0 <= row["test_accuracy"] <= 1.0
    assert len(row["val_accuracy"]) == TINY.epochs


def test_base_b_is_the_first_scratch_run_and_runs_are_reproducible(tiny):
    tasks, bases, scratch = tiny
    assert [row["seed"] for row in scratch] == [0, 1] and {row["k"] for row in scratch} == {0}
    again = [tr.transfer_run(TINY, tasks, bases, "transfer_frozen", 1, seed=1) for _ in range(2)]
    assert again[0]["test_accuracy"] == again[1]["test_accuracy"]
    assert again[0]["val_accuracy"] == again[1]["val_accuracy"]


def _rows(values):
    """Result rows from `{(arm, k): [accuracy per seed]}`."""
    return [{"arm": arm, "k": k, "seed": seed, "test_accuracy": accuracy, "val_accuracy": [], "seconds": 1.0}
            for (arm, k), accuracies in values.items() for seed, accuracy in enumerate(accuracies)]


SEEDS3 = dataclasses.replace(TINY, seeds=(0, 1, 2), arms=tuple(arm for arm in tr.ARMS if "similar" not in arm))
ALL_ARMS = dataclasses.replace(SEEDS3, arms=tuple(tr.ARMS))


def test_reading_says_which_published_orderings_are_reproduced():
    values = {("scratch", 0): [0.70, 0.71, 0.69]}
    for k, frozen in ((1, 0.75), (5, 0.60)):
        values["transfer_frozen", k] = [frozen, frozen + 0.01, frozen - 0.01]
        values["transfer_fine_tuned", k] = [0.76, 0.77, 0.75]
        values["selffer_frozen", k] = [0.72, 0.70, 0.71]
        values["selffer_fine_tuned", k] = [0.70, 0.72, 0.71]
        values["random_frozen", k] = [0.65, 0.66, 0.64] if k == 1 else [0.40, 0.42, 0.41]
    found = {o["ordering"]: o for o in tr.orderings(_rows(values), SEEDS3)}
    assert found["a dissimilar source falls much further"]["reproduced"] is None
    # The similar and dissimilar bases: D falls by 0.30 from k=1 to k=5, S by 0.10.
    for k, similar, dissimilar in ((1, 0.74, 0.73), (5, 0.64, 0.43)):
        values["similar_frozen", k] = [similar, similar + 0.01, similar - 0.01]
        values["dissimilar_frozen", k] = [dissimilar, dissimilar - 0.005, dissimilar + 0.01]
    found = {o["ordering"]: o for o in tr.orderings(_rows(values), ALL_ARMS)}
    assert found["frozen transfer is lower at the deepest stage than at the first"]["reproduced"] is True
    assert "-0.150" in found["frozen transfer is lower at the deepest stage than at the first"]["measured"]
    assert found["fine-tuned transfer stays at or above its base (B from scratch)"]["reproduced"] is True
    random_rule = "random frozen stages fall below B from scratch after a stage or two"
    assert found[random_rule]["reproduced"] is True and "lower at k in [1, 5]" in found[random_rule]["measured"]
    assert found["a dissimilar source falls much further"]["reproduced"] is True
    assert "fall by 0.300" in found["a dissimilar source falls much further"]["measured"]
    assert "by 0.100; D's change minus S's: -0.200" in found["a dissimilar source falls much further"]["measured"]
    # Flip the first ordering: frozen transfer now rises with depth, and the reading says so.
    values["transfer_frozen", 5] = [0.80, 0.81, 0.79]
    values["dissimilar_frozen", 5] = [0.64, 0.65, 0.63]  # and D falls no further than S
    found = {o["ordering"]: o for o in tr.orderings(_rows(values), ALL_ARMS)}
    assert found["frozen transfer is lower at the deepest stage than at the first"]["reproduced"] is False
    assert found["a dissimilar source falls much further"]["reproduced"] is False
    assert "higher" in found["frozen transfer is lower at the deepest stage than at the first"]["measured"]
    assert "not tested" in tr.reading(_rows(values), SEEDS3)
    assert "not reproduced" in tr.reading(_rows(values), ALL_ARMS)
    # Random stages that hold up at the first stage and fall only at the last: not "after a stage or two"
    # when the stages between were measured.
    between = dataclasses.replace(ALL_ARMS, stages=(1, 2, 5))
    values["random_frozen", 1] = [0.70, 0.71, 0.69]
    for arm in {arm for arm, _ in values if arm != "scratch"}:
        values[arm, 2] = values[arm, 1]
    found = {o["ordering"]: o for o in tr.orderings(_rows(values), between)}
    assert found[random_rule]["reproduced"] is False and "lower at k in [5]" in found[random_rule]["measured"]
    differences = tr.difference_table(_rows(values), between, [("dissimilar_frozen", "similar_frozen"),
                                                                ("random_frozen", "scratch")])
    assert "| D frozen - S frozen | -0.008 (" in differences
    # Random stages at k=5 minus scratch (0.41 against 0.70): an interval below zero, in bold.
    assert "| random frozen - B from scratch | +0.000 (" in differences and "| **-0.290 (" in differences
    table = tr.curve_table(_rows(values), SEEDS3)
    assert "| A's stages, frozen (AnB) | 0.750 | 0.800 |" in table


def test_store_is_used_only_for_the_same_configuration(tmp_path):
    rows = _rows({("scratch", 0): [0.5, 0.6]})
    path = tmp_path / "results.json"
    tr.save(path, rows, TINY)
    assert tr.load(path, TINY) == rows
    assert tr.load(path, dataclasses.replace(TINY, epochs=2)) is None
    assert tr.load(tmp_path / "missing.json", TINY) is None


def test_report_writes_table_reading_and_figure(tmp_path):
    values = {("scratch", 0): [0.70, 0.71, 0.69]}
    for arm in tr.ARMS:
        for k in SEEDS3.stages:
            values[arm, k] = [0.6 + 0.01 * k, 0.61 + 0.01 * k, 0.62]
    paths = tr.write_report(tmp_path / "out", _rows(values), ALL_ARMS)
    summary = paths["summary"].read_text()
    assert "| B from scratch (k = 0) |" in summary and "Published orderings" in summary
    assert paths["figure"].stat().st_size > 10_000
    assert tr.load(paths["results"], ALL_ARMS) is not None
    assert "| D's stages (digit base), frozen |" in summary and "digits 0-4 in the same clutter" in summary


@pytest.mark.parametrize("config, message", [
    (dataclasses.replace(TINY, arms=("frozen",)), "Received arms ['frozen']"),
    (dataclasses.replace(TINY, stages=(0, 6)), "Expected values in 1..5"),
    (dataclasses.replace(TINY, target_per_class=1999), "the target pool has 2000 images per class"),
    (dataclasses.replace(TINY, image_size=16), "at least 32"),
    (dataclasses.replace(TINY, matched_per_class=200), "digits 0-4 have 177 to 183 images each"),
])
def test_bad_configurations_are_refused_with_what_to_change(config, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        tr.check_config(config)


def test_command_line_refuses_one_seed_and_unknown_arms(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["transferability", "--seeds", "0", "--quiet"]) == 2
    assert "Expected at least 2 seeds" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["transferability", "--arms", "frozen"])
    assert not (tmp_path / "report-transferability").exists()


def test_recheck_recomputes_scratch_random_and_transferred_stages_against_the_store(tiny):
    tasks, bases, scratch = tiny
    config = dataclasses.replace(TINY, stages=(1, 3, 5))
    arm, k = tr.RECHECK_TRANSFER
    stored = scratch + [tr.transfer_run(config, tasks, {}, "random_frozen", 5, seed=0),
                        tr.transfer_run(config, tasks, bases, arm, k, seed=0)]
    found = tr.recheck(config, tasks, stored, tolerance=0.0)
    assert [(a, stage) for a, stage, *_ in found] == [("scratch", 0), ("random_frozen", 5), (arm, k)]
    assert all(within for *_, within in found), found
    shifted = [{**row, "test_accuracy": row["test_accuracy"] + 0.5} for row in stored]
    assert not any(within for *_, within in tr.recheck(config, tasks, shifted, tolerance=0.05))


def test_copy_stages_copies_and_freezes_only_the_first_k():
    source, target = tr.build_network(TINY, 5, seed=1), tr.build_network(TINY, 5, seed=2)
    tr.copy_stages(source, target, 2, trainable=False)
    for stage in range(1, 6):
        same = all(np.array_equal(a, b) for a, b in zip(source.get_layer(f"stage{stage}_conv").get_weights(),
                                                        target.get_layer(f"stage{stage}_conv").get_weights()))
        assert same == (stage <= 2) and target.get_layer(f"stage{stage}_conv").trainable == (stage > 2)


def test_only_the_bases_an_arm_copies_from_are_trained():
    config = dataclasses.replace(TINY, arms=("dissimilar_frozen",), seeds=(0,))
    bases, rows = tr.train_bases(config, tr.load_tasks(config), verbose=0)
    assert sorted(bases) == ["B", "D"] and [row["arm"] for row in rows] == ["scratch"]
