"""The package's surface: every name of ``reelvec.__all__`` exists and has a docstring (what
``help(reelvec.train)`` shows), the committed ``_core.pyi`` stubs name exactly what the
extension module defines, and the version and reprs."""

import ast
import inspect
import pathlib

import pytest

import reelvec
from reelvec import _core

STUB = pathlib.Path(reelvec.__file__).with_name("_core.pyi")


def _public(names):
    return {n for n in names if not n.startswith("_")}


def test_every_name_in_all_exists_and_has_a_docstring():
    assert len(set(reelvec.__all__)) == len(reelvec.__all__), "a name listed twice"
    for name in reelvec.__all__:
        obj = getattr(reelvec, name)
        if name == "MODEL_KINDS":  # a tuple: its doc is the `#:` comment in the source
            assert obj and all(isinstance(k, str) for k in obj)
            continue
        assert (inspect.getdoc(obj) or "").strip(), f"reelvec.{name} has no docstring"
    assert reelvec.__doc__ and reelvec.errors.__doc__


@pytest.mark.parametrize("cls", [reelvec.Dataset, reelvec.Run])
def test_every_public_member_of_dataset_and_run_has_a_docstring(cls):
    members = _public(vars(cls))
    assert members, cls
    for name in members:
        assert (inspect.getdoc(getattr(cls, name)) or "").strip(), f"{cls.__name__}.{name} has no docstring"


def test_the_public_functions_are_in_all():
    functions = {n for n, v in vars(reelvec).items() if inspect.isfunction(v) and v.__module__ == "reelvec"}
    assert _public(functions) <= set(reelvec.__all__)
    classes = {n for n, v in vars(reelvec).items() if inspect.isclass(v) and v.__module__.startswith("reelvec")}
    assert _public(classes) <= set(reelvec.__all__)
    assert set(reelvec.errors.__all__) <= set(reelvec.__all__)


def _stub_names():
    tree = ast.parse(STUB.read_text())
    top, members = set(), {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            top.add(node.name)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            top.add(node.target.id)
        if isinstance(node, ast.ClassDef):
            names = set()
            for item in node.body:
                if isinstance(item, ast.FunctionDef):
                    names.add(item.name)
                elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                    names.add(item.target.id)
            members[node.name] = names
    return top, members


def test_the_stubs_name_exactly_what_core_defines():
    top, members = _stub_names()
    defined = _public(dir(_core)) | {"__version__"}
    assert top == defined, f"only in the stub: {top - defined}; only in _core: {defined - top}"
    for cls, names in members.items():
        real = _public(dir(getattr(_core, cls)))
        assert names == real, f"{cls}: only in the stub: {names - real}; only in _core: {real - names}"


def test_the_stubs_signatures_match_the_functions():
    tree = ast.parse(STUB.read_text())
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            params = list(inspect.signature(getattr(_core, node.name)).parameters)
            assert [a.arg for a in node.args.args] == params, node.name


def test_version_and_reprs(tiny):
    assert reelvec.__version__ == _core.__version__ and reelvec.__version__.count(".") == 2
    assert repr(tiny).startswith("<reelvec.Dataset ") and "synth:tiny" in repr(tiny)
    run = reelvec.train("popularity", tiny)
    assert repr(run) == f"<reelvec.Run popularity: {len(run.movie_ids)} movies>"
