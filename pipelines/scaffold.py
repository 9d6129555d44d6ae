"""``capacitar init``: a small, working program folder to edit.

It holds a commented ``program.yaml``, an ``inbox/`` with one example ProQOL
export (simulated, 12 providers at pre and post), an empty ``instruments/``
folder for the program's own definitions and a fresh pseudonymisation key.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from pipelines.errors import CapacitarError
from pipelines.ingest.core import mark_settled
from pipelines.ingest.pseudonym import write_new_key

REVERSED = [0, 3, 14, 16, 28]  # ProQOL items 1, 4, 15, 17, 29 (0-based)
PROGRAM_TEMPLATE = """\
# capacitar program file. Paths are relative to this folder. README.md documents every field.
name: Mi programa de formación
language: es            # report language: es or en
inbox: inbox            # where the raw exports land
output: outputs         # where tables and reports are written
instruments_dir: instruments   # your own instrument YAML files (optional)
pseudonymisation:
  key_file: secrets/pseudonym.key   # keep outside outputs; back it up; never share it
min_cell_size: 5        # report figures from fewer people are hidden

cohorts:
  - {id: sede-a-2026-1, site: Sede A, start: 2026-03-01, end: 2026-03-31}

waves:                  # measurement occasions, in order
  - {id: pre, order: 1, label: {es: Antes, en: Before}}
  - {id: post, order: 2, label: {es: Después, en: After}}

sources:                # one entry per kind of export in the inbox
  - name: proqol_formulario
    pattern: "proqol_*.csv"          # glob inside the inbox
    format: csv                      # csv (encoding and delimiter detected) or xlsx
    identifier: [correo]             # hashed into a pseudonym, then dropped
    pii: [nombre]                    # dropped at ingest, never written anywhere
    cohort: {value: sede-a-2026-1}   # or {column: Sede} or {filename: "regex(group)"}
    wave: {column: momento, map: {antes: pre, despues: post}}
    submitted_at: marca_temporal     # decides which duplicate submission wins
    instruments:
      proqol: {items: "p{n}"}        # column template; {n} = item number
"""


def scaffold_program(folder: str | Path, seed: int = 7) -> Path:
    """Create a program folder that ``capacitar run`` accepts as it is.

    Examples
    --------
    >>> import tempfile
    >>> root = scaffold_program(Path(tempfile.mkdtemp()) / "p")
    >>> sorted(p.name for p in root.iterdir())
    ['.gitignore', 'inbox', 'instruments', 'program.yaml', 'secrets']
    """
    root = Path(folder)
    if (root / "program.yaml").exists():
        raise CapacitarError(f"{root / 'program.yaml'} already exists; not overwriting it")
    (root / "inbox").mkdir(parents=True, exist_ok=True)
    (root / "instruments").mkdir(exist_ok=True)
    (root / "program.yaml").write_text(PROGRAM_TEMPLATE, encoding="utf-8")
    example_export(seed).to_csv(root / "inbox" / "proqol_ejemplo.csv", index=False)
    mark_settled(root / "inbox")
    key_file = root / "secrets" / "pseudonym.key"
    if not key_file.exists():
        write_new_key(key_file)
    write_program_gitignore(root)
    return root


def write_program_gitignore(root: Path) -> None:
    """Keep the key, raw exports (names, emails) and Data Docs out of version control."""
    (root / ".gitignore").write_text(
        "# Never commit the pseudonymisation key or raw exports (they hold personal data).\n"
        "secrets/\ninbox/\ngx/uncommitted/\n"
        "# The run lock (one run at a time per program folder).\n.capacitar.lock*\n",
        encoding="utf-8")


def example_export(seed: int) -> pd.DataFrame:
    """A small simulated ProQOL export: 12 providers, pre and post."""
    rng = np.random.default_rng(seed)
    rows = []
    for person in range(12):
        trait = rng.normal()
        for wave, day in (("antes", "2026-03-01"), ("despues", "2026-03-31")):
            answers = np.clip(np.round(3 + 0.9 * trait + rng.normal(0, 0.8, 30)), 1, 5)
            answers[REVERSED] = 6 - answers[REVERSED]  # stored as answered on the form
            row = {"marca_temporal": f"{day} 10:{person:02d}", "nombre": f"Persona {person + 1}",
                   "correo": f"persona{person + 1}@ejemplo.pe", "momento": wave}
            row.update({f"p{n}": int(a) for n, a in enumerate(answers, 1)})
            rows.append(row)
    return pd.DataFrame(rows)
