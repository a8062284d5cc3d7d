"""Print the README's parameter table from an app's schema (the schema is the one source of truth).

    python scripts/params_table.py blip_retrieval > /tmp/table.md
"""
import sys

from easyretrieval.registry import get_app


def table(app_name):
    schema = get_app(app_name).schema
    rows = ["| parameter | type | default | meaning |", "|---|---|---|---|"]
    for p in schema.params:
        if p.default_from is not None:
            source, by = p.default_from
            default = ", ".join(f"{k}: `{v}`" for k, v in by.items()) + f" (by `{source}`)"
        else:
            default = f"`{p.default!r}`" if p.default not in ("", None) else ("`''`" if p.default == "" else "none")
        meaning = p.help
        if p.choices is not None:
            meaning += " (" + " | ".join(f"`{c}`" if c != "" else "`''`" for c in p.choices) + ")"
        rows.append(f"| `{p.name}` | {p.type.__name__} | {default} | {meaning.replace('|', chr(92) + '|')} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(table(sys.argv[1] if len(sys.argv) > 1 else "blip_retrieval"))
