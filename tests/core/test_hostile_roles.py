"""Hostile inputs to role routing: each refused with the right exception and a message naming the thing
and the value. One table, one test."""

import re

import pytest
import torch
from torch import nn

import optimlab
from models import mlp


def w(*shape):
    return nn.Parameter(torch.zeros(*shape))


def exhausted(gen):
    list(gen)
    return gen


NAMED = lambda: list(mlp().named_parameters())  # noqa: E731
create = optimlab.create

BAD = [
    # (id, call, error type, message regex)
    ("an int", lambda: create(5, "muon"), TypeError, r"params must be an iterable .* got int"),
    ("one tensor", lambda: create(w(3, 3), "muon"), TypeError,
     r"not a single tensor \(wrap it in a list\), got shape \(3, 3\)"),
    ("a string", lambda: create("weights", "muon"), TypeError, r"model_or_params must be an iterable .* got str"),
    ("a dict of names", lambda: create(dict(mlp().named_parameters()), "muon"), TypeError,
     r"model_or_params must be an iterable .* got dict"),
    ("exhausted parameters()", lambda: create(exhausted(mlp().parameters()), "muon"), ValueError,
     r"empty parameter list \(an exhausted generator\?"),
    ("exhausted named_parameters()", lambda: create(exhausted(mlp().named_parameters()), "muon"), ValueError,
     r"empty parameter list \(an exhausted generator\?"),
    ("non-tensor entry", lambda: create([w(3), 3], "muon"), TypeError,
     r"parameter #1 must be a tensor, got int"),
    ("None entry", lambda: create([None], "muon"), TypeError, r"parameter #0 must be a tensor, got NoneType"),
    ("3-tuple entry", lambda: create([("a", w(3), 1)], "muon"), TypeError, r"parameter #0 must be a tensor, got tuple"),
    ("name not a str", lambda: create([(1, w(3))], "muon"), TypeError,
     r"parameter #0 must be a tensor, got tuple"),
    ("empty name", lambda: create([("", w(3))], "muon"), ValueError, r"params\[0\]: .* has an empty name"),
    ("tensors and pairs mixed", lambda: create([w(3), ("b", w(3))], "muon"), TypeError,
     r"not a mix: params\[0\] is a tensor, params\[1\] a pair"),
    ("groups and tensors mixed", lambda: create([{"params": [w(3)]}, w(3)], "muon"), TypeError,
     r"not a mix: params\[0\] is a group, params\[1\] a tensor"),
    ("duplicate name", lambda: create([("w", w(3, 4)), ("w", w(3, 4))], "muon"), ValueError,
     r"parameter name 'w' is given twice, for two different tensors \(shapes \(3, 4\) and \(3, 4\)\)"),
    ("tensor given twice", lambda: (lambda t: create([t, w(2), t], "muon"))(w(3, 4)), ValueError,
     r"the same tensor \(shape \(3, 4\)\) is given twice, as entries 0 and 2"),
    ("glob matching nothing (names)", lambda: create(NAMED(), "muon", roles={"*.wieght": "vector"}), ValueError,
     r"roles\['\*.wieght'\] matches no parameter of the named parameters; names look like: 0.weight"),
    ("glob matching nothing (module)", lambda: create(mlp(), "muon", roles={"*.wieght": "vector"}), ValueError,
     r"roles\['\*.wieght'\] matches no parameter of Sequential"),
    ("covered twice by globs", lambda: create(NAMED(), "muon", roles={"0.*": "matrix", "0.weight": "vector"}),
     ValueError, r"parameter '0.weight' is covered by two rules: explicit roles\['0.\*'\] -> 'matrix' and "
                 r"explicit roles\['0.weight'\] -> 'vector'"),
    ("head and embedding at once", lambda: create(NAMED(), "muon", head="4", embedding="4"), ValueError,
     r"parameter '4.weight' is covered by two rules: explicit embedding= -> 'embedding' and explicit head="),
    ("unknown head name", lambda: create(NAMED(), "muon", head="lm_head"), ValueError,
     r"head='lm_head' names no parameter .* among the 6 named parameters"),
    ("unknown embedding name", lambda: create(NAMED(), "muon", embedding=["0", "wte"]), ValueError,
     r"embedding='wte' names no parameter"),
    ("unknown role", lambda: create(NAMED(), "muon", roles={"0.weight": "hidden"}), ValueError,
     r"roles\['0.weight'\] must be one of .* got 'hidden'"),
    ("roles not a mapping", lambda: create(NAMED(), "muon", roles=["0.weight"]), TypeError,
     r"roles= must be a mapping of name glob -> role, got list"),
    ("glob not a str", lambda: create(NAMED(), "muon", roles={0: "matrix"}), TypeError,
     r"roles keys must be non-empty name globs, got 0"),
    ("head of the wrong type", lambda: create(NAMED(), "muon", head=4), TypeError,
     r"head= must be a name or a list/tuple of non-empty names, got 4"),
    ("head of the wrong type (module)", lambda: create(mlp(), "muon", head=[4]), TypeError,
     r"head= must be a name or a list/tuple of non-empty names, got \[4\]"),
    ("head= with bare tensors", lambda: create([w(3, 3)], "muon", head="x"), TypeError,
     r"head=, embedding= and roles= need an nn.Module or named parameters"),
    ("roles= with unnamed groups", lambda: create([{"params": [w(3, 3)]}], "muon", roles={"*": "matrix"}),
     TypeError, r"give the groups 'param_names'"),
    ("group without params", lambda: create([{"lr": 0.1}], "muon"), ValueError,
     r"param group 0 has no 'params'; got keys \['lr'\]"),
    ("param_names too short", lambda: create([{"params": [w(3), w(3)], "param_names": ["a"]}], "muon"),
     ValueError, r"param group 0 has 2 params but 1 param_names"),
    ("param_names not str", lambda: create([{"params": [w(3), w(3)], "param_names": [1, 2]}], "muon"),
     TypeError, r"param group 0\['param_names'\] must be a list of non-empty str, got \[1, 2\]"),
    ("pairs and param_names", lambda: create([{"params": [("a", w(3))], "param_names": ["a"]}], "muon"),
     ValueError, r"param group 0 gives both \(name, tensor\) pairs and 'param_names'"),
    ("group mixes tensors and pairs", lambda: create([{"params": [w(3), ("a", w(3))]}], "muon"), TypeError,
     r"param group 0\['params'\] must be all tensors or all \(name, tensor\) pairs, got \['pair', 'tensor'\]"),
    ("group role unknown", lambda: create([{"params": [w(3)]}, {"params": [w(3)], "role": "bias"}], "muon"),
     ValueError, r"param group 1: role must be one of .* got 'bias'"),
    ("ortho_blocks not dividing rows", lambda: create(NAMED(), "muon", ortho_blocks=3), ValueError,
     r"muon: ortho_blocks=3 must divide .* parameter '0.weight' has shape \(16, 7\) \(16 rows\)"),
]


@pytest.mark.parametrize("call,err,pattern", [b[1:] for b in BAD], ids=[re.sub(r"\W+", "_", b[0]) for b in BAD])
def test_hostile_routing_input(call, err, pattern):
    with pytest.raises(err, match=pattern):
        call()


def test_table_is_large():
    assert len(BAD) >= 20


def test_refusal_leaves_parameters_untouched():
    model = mlp()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    with pytest.raises(ValueError):
        create(model.named_parameters(), "muon", roles={"nope": "vector"})
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())
