"""Rewrite the README's configuration table from service/config.py (`make readme`)."""

from pathlib import Path

from service.config import settings_markdown

readme = Path(__file__).resolve().parents[1] / "README.md"
text = readme.read_text(encoding="utf-8")
start = text.index("| Variable | Default | Allowed | Meaning |")
end = text.index("\n\n", start)
readme.write_text(text[:start] + settings_markdown().rstrip("\n") + text[end:], encoding="utf-8")
