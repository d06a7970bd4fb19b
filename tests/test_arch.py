import json

import pytest

import nasbench
from nasbench import Arch, Layer, NasbenchError, Stage


def test_every_shipped_space_loads_and_samples(space):
    assert space.stages and space.references
    for seed in range(5):
        arch = space.sample(seed)
        assert space.contains(arch)
        assert arch == space.sample(seed), "same seed, same arch"
    assert len({space.sample(s) for s in range(20)}) > 15
    assert space.contains(space.largest()) and space.contains(space.smallest())
    assert space.log10_size > 3


@pytest.mark.parametrize("seed", range(12))
def test_string_and_json_round_trip(space, seed):
    arch = space.sample(seed)
    assert Arch.parse(str(arch)) == arch
    assert Arch.from_json(arch.to_json()) == arch
    assert hash(Arch.parse(str(arch))) == hash(arch)
    assert Arch.from_json(json.dumps({"arch": arch.to_dict()})) == arch


def test_id_is_stable_and_short():
    b0 = nasbench.load_space("efficientnet").reference("b0")
    assert b0.id == "2be680cdd7"  # changing it breaks every saved run and zoo entry
    assert len({nasbench.load_space("tiny").sample(s).id for s in range(50)}) == 50


def test_arch_is_frozen_and_records_resolution():
    arch = nasbench.load_space("tiny").sample(3)
    with pytest.raises(AttributeError):
        arch.resolution = 64
    assert arch.with_resolution(24).resolution == 24
    assert str(arch).startswith(f"r{arch.resolution}_")


def test_encode_decode_are_inverse(space):
    for seed in range(5):
        arch = space.sample(seed)
        assert space.decode(space.encode(arch)) == arch
    labels = [d.label for d in space.dimensions()]
    assert len(labels) == len(set(labels))


def test_contains_names_the_choice_out_of_range():
    space = nasbench.load_space("efficientnet")
    b0 = space.reference("b0")
    wide = Arch(
        b0.resolution,
        b0.stem,
        b0.stem_stride,
        b0.head,
        b0.act,
        (Stage(17, 1, 0.25, b0.stages[0].layers),) + b0.stages[1:],
    )
    assert not space.contains(wide)
    with pytest.raises(NasbenchError, match=r"s1\.width = 17 is not one of \[16, 24\]"):
        space.check(wide)
    attn_early = Arch(
        b0.resolution,
        b0.stem,
        b0.stem_stride,
        b0.head,
        b0.act,
        (Stage(16, 1, 0.25, (Layer("attention", 3, 1),)),) + b0.stages[1:],
    )
    with pytest.raises(NasbenchError, match=r"s1\.l1\.block = 'attention'"):
        space.check(attn_early)
    with pytest.raises(NasbenchError, match="resolution = 100"):
        space.check(b0.with_resolution(100))


def test_reference_points_follow_compound_scaling():
    space = nasbench.load_space("efficientnet")
    b3 = space.reference("b3")
    assert b3.resolution == 300 and b3.stem == 40 and b3.head == 1536
    assert [s.width for s in b3.stages] == [24, 32, 48, 96, 136, 232, 384]
    assert [s.depth for s in b3.stages] == [2, 3, 3, 5, 5, 6, 2]
    b2 = space.reference("b2")
    assert [s.width for s in b2.stages] == [16, 24, 48, 88, 120, 208, 352]
    assert [s.depth for s in b2.stages] == [2, 3, 3, 4, 4, 5, 2]


@pytest.mark.parametrize(
    "text, message",
    [
        ("r224_stem32s2_head1280", "header"),
        ("r224_stem32s2_head1280_silu|c16s1se0.25:zz3e1", "layer 'zz3e1'"),
        ("r224_stem32s2_head1280_silu|c16s1se0.25:mb4e1", "kernel must be odd"),
        ("r224_stem32s3_head1280_silu|c16s1se0.25:mb3e1", "stem stride must be 1 or 2"),
        ("r224_stem32s2_head1280_silu|c12s1se0.25:at3e1", "multiple of 8"),
        ("r224_stem32s2_head1280_gelu|c16s1se0.25:mb3e1", "activation 'gelu'"),
    ],
)
def test_bad_arch_strings_are_rejected_clearly(text, message):
    with pytest.raises(NasbenchError, match=message):
        Arch.parse(text)


def test_resolve_specs():
    space = nasbench.load_space("tiny")
    assert space.resolve("ref:tiny_ref") == space.reference("tiny_ref")
    assert space.resolve("sample:4") == space.sample(4)
    assert space.resolve("largest") == space.largest()
    assert space.resolve(str(space.sample(1))) == space.sample(1)
    with pytest.raises(NasbenchError, match="integer seed"):
        space.resolve("sample:x")
    other = nasbench.load_space("efficientnet").reference("b0")
    with pytest.raises(NasbenchError, match="not in space tiny"):
        space.resolve(str(other))
