"""No code injection (issue 7): nothing written in a .cnn file or its file name can become code in a
generated module. Names are identifiers by the grammar, comments are dropped, and text that reaches
comments and docstrings (the source path, the network name) is escaped onto one line."""

from __future__ import annotations

import ast
import io
import keyword
import tokenize
from pathlib import Path

import networkx as nx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnc.codegen import generate, write
from cnnc.codegen.safe import check_name, comment_text, py_ident
from cnnc.codegen.schedule import display_source
from cnnc.errors import CnncError, SyntaxErrorCnn
from cnnc.frontend import load, parse
from cnnc.graph import add_node, new_graph
from cnnc.ops import make_op

NET = "input 3x8x8\nc1: conv(4, 3, pad=1) relu\nmaxpool(2)\nflatten\nfc(5)\n"
TARGETS = ["cpu", "cuda"]
PAYLOAD = "__import__('os').system('touch PWNED')"
EVIL_SOURCES = [
    'x.cnn"""\nimport os\nos.system("touch PWNED")\n"""',
    "x.cnn'''\n" + PAYLOAD + "\n'''",
    "evil\nimport os  # .cnn",
    "evil\r" + PAYLOAD + "\r.cnn",
    "a\\N.cnn",  # a bad \N{...} escape inside a docstring is a SyntaxError
    "a\\",
    "trojan\u202e\u2066.cnn\u2028" + PAYLOAD + "\u0085x",
    "nul\x00byte\x1b[31m.cnn",
    "/abs/dir\nwith newline/net.cnn",
    'net.cnn" + ' + PAYLOAD + ' + "',
]


def _module_facts(text: str) -> tuple[set[str], set[str], str | None]:
    """(imported modules, every name and attribute used as code, the module docstring)."""
    tree = ast.parse(text)  # a SyntaxError is a failure too: the text broke out of its place
    imports: set[str] = set()
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imports |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            imports.add(node.module or "")
        elif isinstance(node, ast.Name):
            names.add(node.id)
        elif isinstance(node, ast.Attribute):
            names.add(node.attr)
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
    return imports, names, ast.get_docstring(tree, clean=False)


def _comments(text: str) -> list[str]:
    return [t.string for t in tokenize.generate_tokens(io.StringIO(text).readline) if t.type == tokenize.COMMENT]


@pytest.fixture(scope="module")
def baseline() -> dict[str, tuple[set[str], set[str]]]:
    g = parse(NET, source="plain.cnn")
    out = {}
    for t in TARGETS:
        imports, names, _ = _module_facts(generate(g, t))
        out[t] = (imports, names)
    return out


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("source", EVIL_SOURCES, ids=[f"src{i}" for i in range(len(EVIL_SOURCES))])
def test_source_path_cannot_break_out(source: str, target: str, baseline: dict) -> None:
    g = parse(NET, source=source)
    text = generate(g, target)
    imports, names, doc = _module_facts(text)
    assert (imports, names) == baseline[target]
    assert "PWNED" not in "".join(names)
    # the header docstring still shows the path, faithfully: escaped, not dropped
    assert doc is not None and display_source(source) in doc
    # every comment and the docstring stay on their lines: no raw line break from the path
    for c in _comments(text):
        assert "\n" not in c and "\r" not in c
    # the injected words exist only inside string literals and comments, never as code tokens
    for tok in tokenize.generate_tokens(io.StringIO(text).readline):
        if tok.type not in (tokenize.STRING, tokenize.COMMENT):
            assert tok.string not in ("system", "__import__", "PWNED"), tok


def test_real_files_with_newlines_and_quotes_in_their_names(tmp_path: Path, baseline: dict) -> None:
    d = tmp_path / 'dir"""\nimport os\n'
    d.mkdir()
    f = d / "n\u2028et'''.cnn"
    f.write_text(NET, encoding="utf-8")
    g = load(f)
    assert g.graph["name"].isidentifier()  # a file name becomes an identifier-like network name
    for t in TARGETS:
        path = write(g, t, tmp_path / "out")
        assert path.parent == tmp_path / "out" and path.name.isascii() and path.suffix == ".py"
        imports, names, _ = _module_facts(path.read_text(encoding="utf-8"))
        assert (imports, names) == baseline[t]


@pytest.mark.parametrize("src", [
    'network x"""; import os\ninput 3x8x8\nrelu\n',
    "network x\ninput 3x8x8\nc\u00f6nv: conv(4, 3)\n",
    "input 3x8x8\nblock \u00e9vil() = relu\n\u00e9vil\n",
    "input 3x8x8\nconv(4, 3, pad=__import__('os'))\n",
    "input 3x8x8\nx\u202e: relu\n",
    'input 3x8x8\n"""\nimport os\n"""\n',
    "input 3x8x8\nrelu(\"\"\"x\"\"\")\n",
])
def test_names_that_are_not_identifiers_are_syntax_errors(src: str) -> None:
    with pytest.raises(SyntaxErrorCnn):
        parse(src)


def test_comments_never_reach_the_module(baseline: dict) -> None:
    src = ('# """\n# import os\nnetwork n  # \'\'\'; ' + PAYLOAD + "\ninput 3x8x8  # \\N{\n"
           + NET.split("\n", 1)[1].replace("relu", 'relu # """ + ' + PAYLOAD))
    g = parse(src, source="c.cnn")
    for t in TARGETS:
        text = generate(g, t)
        assert "PWNED" not in text and "\\N{" not in text
        assert _module_facts(text)[:2] == baseline[t]


def test_keywords_as_labels_blocks_and_network_names_generate_valid_modules() -> None:
    src = ("network import\ninput 3x8x8\nblock lambda(def) = conv(def, 1)\nclass: conv(4, 3)\nNone: relu\n"
           "yield: lambda(4)\nfor: concat {\n conv(2, 1)\n @None\n}\n")
    g = parse(src)
    for t in TARGETS:
        _module_facts(generate(g, t))


def _hand_built(node: str) -> nx.DiGraph:
    g = new_graph("hand", (3, 8, 8))
    add_node(g, node, make_op("relu"), ["input"])
    g.graph["output"] = node
    return g


@pytest.mark.parametrize("node", ['r"""\nimport os\n"""', "r\nimport os", "r\\", "r'", "r\u2028x"])
def test_hand_built_graph_with_an_unsafe_node_name_is_refused(node: str) -> None:
    with pytest.raises(CnncError, match="cannot be written into generated code"):
        generate(_hand_built(node), "cpu")


def test_hand_built_graph_with_an_unsafe_network_name(baseline: dict) -> None:
    g = parse(NET)
    g.graph["name"] = 'n"""\n' + PAYLOAD + '\n"""'
    for t in TARGETS:
        assert _module_facts(generate(g, t))[:2] == baseline[t]


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_comment_text_is_one_line_and_round_trips(s: str) -> None:
    c = comment_text(s)
    assert c.isprintable() and '"' not in c.replace('\\"', "") and "'" not in c.replace("\\'", "")
    # inside a docstring or a string literal the escaped text reads back as the original
    assert ast.literal_eval('"""' + c + '"""') == s
    assert ast.literal_eval("'" + c + "'") == s
    # and as a comment it is one comment token on one line
    assert _comments(f"x = 1  # {c}\n") == [f"# {c}"]


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_py_ident_is_an_identifier_and_never_a_keyword(s: str) -> None:
    ident = py_ident(s)
    assert ident.isidentifier() and ident.isascii()
    assert not keyword.iskeyword(ident) and not keyword.issoftkeyword(ident)


def test_py_ident_keeps_plain_names_readable() -> None:
    assert py_ident("i3a/b2/conv1") == "i3a_b2_conv1"
    assert py_ident("3x") == "_3x"
    assert py_ident("class") == "class_"


def test_check_name_accepts_front_end_names() -> None:
    g = load(Path(__file__).resolve().parent.parent / "archs" / "googlenet.cnn")
    for n in g.nodes:
        assert check_name(n) == n


@pytest.mark.parametrize("junk", ["\u2028", "\x0c", "\x0b", "\x1c", "\x85"])
def test_error_shows_the_right_line_and_no_control_characters(junk: str) -> None:
    """Lines are counted at \\n only (as the lexer does), and a comment's terminal escapes are not echoed."""
    src = f"input 3x8x8  # a{junk}b \x1b[2J\nconv(4, 99)\n"
    with pytest.raises(CnncError) as info:
        parse(src, source="u.cnn")
    lines = info.value.render().split("\n")
    assert lines[0].startswith("u.cnn:2:1: error: kernel 99")
    assert lines[1] == "    conv(4, 99)"
    with pytest.raises(CnncError) as info:
        parse(f"input 3x8x8  # {junk}\x1b[2J\nconv(4, 3) $\n", source="u.cnn")
    assert all(ln.isprintable() for ln in info.value.render().split("\n"))
    with pytest.raises(CnncError) as info:
        parse(f"input 3x8x8\nconv(4, 99)  # \x1b[2J{junk}\n", source="u.cnn")
    shown = info.value.render()
    assert "\x1b" not in shown and all(ln.isprintable() for ln in shown.split("\n"))
