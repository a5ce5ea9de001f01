"""Print the "Every setting" tables of docs/configuration.md from the settings model.

    python scripts/settings_table.py > /tmp/table.md   # then paste under "## Every setting"
"""

from __future__ import annotations

from typing import Any

from harness.settings import Settings, env_name, flag_name, setting_names, suite_of


def _default(name: str) -> str:
    info = Settings.model_fields[name]
    value: Any = info.default_factory() if info.default_factory is not None else info.default  # type: ignore[call-arg]
    if value is None or value == []:
        return "—"
    if isinstance(value, list):
        return ", ".join(map(str, value))
    if isinstance(value, bool):
        return "true" if value else "false"
    return f"`{value}`"


def main() -> None:
    groups: dict[str, list[str]] = {}
    for name in setting_names():
        groups.setdefault(suite_of(name) or "run", []).append(name)
    for group, names in groups.items():
        print(f"\n### {'Target and run' if group == 'run' else group + ' suite'}\n")
        print("| setting | flag | variable | default | meaning |")
        print("|---|---|---|---|---|")
        for name in names:
            flag = flag_name(name)
            print(f"| `{name}` | {f'`{flag}`' if flag else '—'} | `{env_name(name)}` | {_default(name)} | "
                  f"{Settings.model_fields[name].description} |")


if __name__ == "__main__":
    main()
