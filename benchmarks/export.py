"""How long translating 1,000 pipelines to Airflow DAG files takes, beside compiling them (what
``render`` does) and beside writing their Data Pipeline definitions as JSON. One environment,
the generated manifests of ``compile.py``, everything in this process on files already in
memory; each figure is the best of a few repetitions.

    python benchmarks/export.py [--manifests 1000] [--repeat 3]

The translation runs on the compiled pipelines, so ``export`` costs compile + translate; the
ratio printed is the translation's cost over the compile's, and export's over render's.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from datetime import date
from pathlib import Path

from compile import best, generate

from reconciler.airflow import source_of, translate
from reconciler.desired import sql as sqlgen
from reconciler.desired.compiler import CompileOptions
from reconciler.desired.config import AirflowSettings
from reconciler.desired.definition import to_json
from reconciler.desired.project import compile_project
from reconciler.qa.bundle import qa_runner
from reconciler.source import read_snapshot


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifests", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "repo"
        generate(root, args.manifests)
        snapshot = read_snapshot(root)
    options = CompileOptions(date(2026, 11, 26), qa_runner=qa_runner())
    settings = AirflowSettings()

    def compile_once():
        sqlgen.clear_caches()
        result = compile_project(snapshot, options, environments=["staging"])
        if result.errors:
            raise SystemExit(f"generated manifests do not compile: {result.errors[0].format()}")
        return result.compiled("staging")

    compiled = compile_once()
    compile_seconds = best(compile_once, args.repeat)
    render_seconds = best(lambda: [to_json(c.render("api")) for c in compiled], args.repeat)
    sizes: list[int] = []

    def translate_all():
        sizes.clear()
        for pipeline in compiled:
            sizes.append(len(translate(source_of(pipeline, f"staging-{pipeline.name}"),
                                       settings).text))

    translate_seconds = best(translate_all, args.repeat)
    n = len(compiled)
    render = compile_seconds + render_seconds
    export = compile_seconds + translate_seconds
    print(f"pipelines: {n} (1 environment)")
    print(f"compile                 : {compile_seconds:7.3f} s  "
          f"({compile_seconds / n * 1e3:.2f} ms each)")
    print(f"render (compile + JSON) : {render:7.3f} s")
    print(f"translate to Airflow    : {translate_seconds:7.3f} s  "
          f"({translate_seconds / n * 1e3:.2f} ms each, {sum(sizes) / n / 1024:.1f} KiB per DAG)")
    print(f"export (compile + DAGs) : {export:7.3f} s  = {export / render:.2f}x render; "
          f"the translation alone is {translate_seconds / compile_seconds:.2f}x the compile")
    return 0


if __name__ == "__main__":
    sys.exit(main())
