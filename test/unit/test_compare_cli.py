"""`uam compare`: two eval JSONs (as `uam eval --json` writes them) paired per task and seed."""

import json

from uam_ros.cli import main


def eval_json(path, outcomes: dict[str, list[bool]], first_seed: int = 100000):
    tasks = {task: {"successes": sum(wins), "episodes": len(wins),
                    "episodes_detail": [{"seed": first_seed + i, "success": w} for i, w in enumerate(wins)]}
             for task, wins in outcomes.items()}
    path.write_text(json.dumps({"closed_loop": {"split": "train", "tasks": tasks}}))
    return path


def test_compare_pairs_episodes_by_seed_and_reports_mcnemar(tmp_path, capsys):
    a = eval_json(tmp_path / "a.json", {"reach": [True] * 8 + [False] * 2, "press": [True, False]})
    b = eval_json(tmp_path / "b.json", {"reach": [False] * 8 + [True] * 2})
    assert main(["compare", str(a), str(b), "--json", str(tmp_path / "c.json")]) == 0
    rows = json.loads((tmp_path / "c.json").read_text())["tasks"]
    assert list(rows) == ["reach"]  # press is only in A: not compared
    assert (rows["reach"]["only_a"], rows["reach"]["only_b"], rows["reach"]["both"]) == (8, 2, 0)
    assert abs(rows["reach"]["p_mcnemar"] - 2 * (1 + 10 + 45) / 1024) < 1e-12
    assert "reach" in capsys.readouterr().out


def test_compare_refuses_results_on_other_layouts(tmp_path, capsys):
    a = eval_json(tmp_path / "a.json", {"reach": [True, False]})
    b = eval_json(tmp_path / "b.json", {"reach": [True, False]}, first_seed=200000)
    assert main(["compare", str(a), str(b)]) == 2
    assert "different episodes" in capsys.readouterr().err
