"""What `pixelprune eval` shows: the rich table, the JSON, and the score-vs-kept plot (Pillow only)."""

from __future__ import annotations

import json
import sys


def report_json(task: str, model: str, metric: str, arms: list[dict]) -> dict:
    return {"task": task, "model": model, "metric": metric, "arms": arms}


def print_json(report: dict) -> None:
    sys.stdout.write(json.dumps(report, indent=2) + "\n")


def _number(value, spec: str, scale: float = 1.0) -> str:
    return "-" if value is None else format(value * scale, spec)


def render_table(report: dict) -> None:
    from pixelprune_cli.report.report import render_rows

    columns = ("arm", "n", "failed", "score", "Δ vs full", "kept %", "tokens", "ViT+prefill ms", "generate ms", "agree")
    rows = [(arm["name"], str(arm["n"]), str(arm["failed"]), _number(arm["score"], ".4f"),
             _number(arm.get("delta"), "+.4f"), _number(arm["kept"], ".1f", 100), _number(arm["tokens"], ".1f"),
             _number(arm["prefill_ms"], ".1f"), _number(arm["generate_ms"], ".1f"), _number(arm.get("agreement"), ".1%"))
            for arm in report["arms"]]
    render_rows(f"{report['task']} ({report['metric']}), {report['model']}", columns, rows)


def draw_plot(report: dict, handle) -> None:
    """Score (y) against kept fraction (x), one labelled point per arm, as PNG on `handle`."""
    from PIL import Image, ImageDraw

    width, height, margin = 640, 420, 60
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    points = [(a["kept"], a["score"], a["name"]) for a in report["arms"] if a["kept"] is not None
              and a["score"] is not None]
    low = min([s for _, s, _ in points] + [1.0])
    high = max([s for _, s, _ in points] + [0.0])
    low, high = max(0.0, low - 0.05), min(1.0, high + 0.05)  # scores are fractions: the axis stays in [0, 1]

    def at(kept: float, score: float) -> tuple[float, float]:
        return (margin + kept * (width - 2 * margin),
                height - margin - (score - low) / (high - low) * (height - 2 * margin))

    draw.rectangle([margin, margin, width - margin, height - margin], outline="black")
    for k in range(6):
        x, _ = at(k / 5, low)
        draw.line([x, height - margin, x, height - margin + 4], fill="black")
        draw.text((x - 10, height - margin + 8), f"{k * 20}%", fill="black")
        score = low + k * (high - low) / 5
        _, y = at(0, score)
        draw.line([margin - 4, y, margin, y], fill="black")
        draw.text((8, y - 6), f"{score:.3f}", fill="black")
    draw.text((width // 2 - 60, height - 24), "visual tokens kept", fill="black")
    draw.text((margin, 20), f"{report['task']}: {report['metric']} vs tokens kept", fill="black")
    for k, (kept, score, name) in enumerate(points):
        x, y = at(kept, score)
        colour = "red" if name == "full" else "blue"
        draw.ellipse([x - 5, y - 5, x + 5, y + 5], fill=colour)
        draw.text((x + 8, y - 16 + 14 * (k % 3)), name, fill=colour)  # staggered: close points keep legible labels
    image.save(handle, format="PNG")
