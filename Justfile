# Recipes for developers. `just` itself comes with the dev extra (rust-just).
set shell := ["bash", "-euo", "pipefail", "-c"]

py := ".venv/bin/python"
paths := "ncat_trio tests examples benchmarks tools"

default: test

# Create .venv and install ncat-trio with its dev tools (the README's first command, minus the demo).
setup:
    python3 -m venv .venv
    .venv/bin/pip install -q -e '.[dev]'

# The README's test command.
test *ARGS:
    {{py}} -m pytest {{ARGS}}

# Only the fast tests (no interop, no slow): about 2.5 minutes of the suite's 4.5 on 2 cores.
quick:
    {{py}} -m pytest -m "not interop and not slow" -q

lint:
    .venv/bin/ruff check {{paths}}
    .venv/bin/ruff format --check {{paths}}
    .venv/bin/mypy

fmt:
    .venv/bin/ruff format {{paths}}
    .venv/bin/ruff check --fix {{paths}}

# Build the reference C peers (ttcp_ref, roundtrip_ref) into build/peers.
peers:
    make -s -C peers

demo:
    .venv/bin/ncat-trio demo

# The sdist and the wheel in dist/, checked by twine (metadata, README rendering).
dist:
    rm -rf dist/ncat_trio-*
    {{py}} -m build --outdir dist .
    .venv/bin/twine check --strict dist/ncat_trio-*

# dist/ncat-trio.pyz: one file to copy to a host with Python >= 3.11 and nothing else.
pyz:
    {{py}} tools/build_pyz.py --output dist/ncat-trio.pyz

# Regenerate the man page (docs/ncat-trio.1) from the CLI; tests/project/test_manpage.py checks it.
man:
    {{py}} tools/manpage.py
    MANWIDTH=80 man --warnings -l docs/ncat-trio.1 >/dev/null

# Benchmarks against the real peers, same-run ratios (see benchmarks/RESULTS.md).
bench *ARGS: peers
    {{py}} benchmarks/run_all.py {{ARGS}}

# Reliability (RELIABILITY.md): a long soak of listen -k and relay, then the signal storm.
soak SECONDS="60":
    {{py}} benchmarks/soak.py --duration {{SECONDS}}
    {{py}} benchmarks/soak.py --signals 200

# 100k+ hypothesis inputs over every decoder and parser, then 100k atheris runs (the fuzz
# extra installs atheris where PyPI has a wheel, Linux x86-64; elsewhere: hypothesis only).
fuzz *ARGS:
    {{py}} -c "import atheris" 2>/dev/null || .venv/bin/pip install -q -e '.[fuzz]'
    {{py}} benchmarks/fuzz.py {{ARGS}}
