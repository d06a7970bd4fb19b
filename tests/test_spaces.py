"""Loading validates everything: each malformed space gets its own clear one-sentence error. The shipped
spaces are built around their reference networks: their largest subnet stays within 2x the dearest one."""

import copy

import pytest
import yaml

import nasbench
from nasbench import NasbenchError
from nasbench.counting import count
from nasbench.spaces import round_depth, round_width

GOOD = {
    "name": "mini",
    "resolution": [16, 32],
    "stem": {"base": 16, "stride": 1, "width": [8, 16]},
    "head": {"base": 64},
    "stages": [
        {
            "name": "a",
            "stride": 1,
            "se": 0.25,
            "blocks": ["mbconv", "fused_mbconv"],
            "kernel": [3, 5],
            "expand": [1, 3],
            "depth": [1, 2],
            "width": [16, 24],
            "base": {"block": "mbconv", "kernel": 3, "expand": 1, "depth": 1, "width": 16},
        },
        {
            "name": "b",
            "stride": 2,
            "blocks": ["mbconv", "attention"],
            "kernel": [3],
            "expand": [4],
            "depth": [1],
            "width": {"mult": [0.75, 1.0]},
            "base": {"block": "mbconv", "kernel": 3, "expand": 4, "depth": 1, "width": 32},
        },
    ],
    "references": {"ref": {"width": 1.0, "depth": 1.0, "resolution": 32}},
}


def write(tmp_path, data, name="space.yaml"):
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return path


def mutate(fn):
    data = copy.deepcopy(GOOD)
    fn(data)
    return data


def test_good_space_loads(tmp_path):
    space = nasbench.load_space(write(tmp_path, GOOD))
    assert space.name == "mini"
    assert space.stages[1].widths == (24, 32)  # {mult: [0.75, 1.0]} of 32, rounded to multiples of 8
    assert space.contains(space.reference("ref"))
    # 2 res x 2 stem x 1 head x [2 widths x (8 + 8^2) layer choices] x [2 widths x 2 blocks]
    assert space.size == 2 * 2 * 1 * (2 * (8 + 8**2)) * (2 * 2)


MALFORMED = [
    (
        "kernel 4",
        lambda d: d["stages"][0].update(kernel=[3, 4]),
        r"stages\[0\]\.kernel\[1\]: 4 is not valid; valid values are \[1, 3, 5, 7, 9\]",
    ),
    (
        "stride 3",
        lambda d: d["stages"][1].update(stride=3),
        r"stages\[1\]\.stride: 3 is not valid; valid values are \[1, 2\]",
    ),
    ("empty choices", lambda d: d["stages"][0].update(expand=[]), r"stages\[0\]\.expand: must be a non-empty list"),
    (
        "width not positive",
        lambda d: d["stages"][0].update(width=[16, 0]),
        r"stages\[0\]\.width\[1\]: must be at least 1, got 0",
    ),
    (
        "unknown block",
        lambda d: d["stages"][0].update(blocks=["mbconv", "resnet"]),
        r"stages\[0\]\.blocks\[1\]: unknown block type 'resnet'; valid are",
    ),
    ("unknown top key", lambda d: d.update(stagez=[]), r"stagez: unknown key; valid keys are"),
    ("unknown stage key", lambda d: d["stages"][0].update(kernels=[3]), r"stages\[0\]\.kernels: unknown key"),
    ("missing key", lambda d: d["stages"][0].pop("depth"), r"stages\[0\]\.depth: is required"),
    (
        "kernel not int",
        lambda d: d["stages"][0].update(kernel=[3, "five"]),
        r"stages\[0\]\.kernel\[1\]: must be an integer, got 'five'",
    ),
    ("se out of range", lambda d: d["stages"][0].update(se=1.5), r"stages\[0\]\.se: must be a number in \[0.0, 1.0\)"),
    ("bad activation", lambda d: d.update(activation="tanh"), r"activation: 'tanh' is not valid"),
    (
        "attention width",
        lambda d: d["stages"][1].update(width=[20]),
        r"stages\[1\]\.width: width 20 cannot run attention",
    ),
    (
        "base not a choice",
        lambda d: d["stages"][0]["base"].update(kernel=7),
        r"stages\[0\]\.base\.kernel: 7 is not among the stage's choices \[3, 5\]",
    ),
    (
        "reference outside",
        lambda d: d["references"]["ref"].update(resolution=64),
        r"references\.ref: the compound-scaled point leaves the space: resolution = 64",
    ),
    ("no stages", lambda d: d.update(stages=[]), r"stages: must be a non-empty list of stages"),
    ("duplicate stage names", lambda d: d["stages"][1].update(name="a"), r"stages: stage names must be unique"),
    ("resolution too small", lambda d: d.update(resolution=[4]), r"resolution\[0\]: must be at least 8"),
]


@pytest.mark.parametrize("case, change, message", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_space_is_rejected_with_its_own_message(tmp_path, case, change, message):
    path = write(tmp_path, mutate(change))
    with pytest.raises(NasbenchError, match=message) as err:
        nasbench.load_space(path)
    text = str(err.value)
    assert text.startswith(f"search space {path}: ")
    assert "\n" not in text


def test_messages_are_distinct(tmp_path):
    messages = set()
    for _, change, _ in MALFORMED:
        with pytest.raises(NasbenchError) as err:
            nasbench.load_space(write(tmp_path, mutate(change)))
        messages.add(str(err.value))
    assert len(messages) == len(MALFORMED)


def test_yaml_syntax_error_names_the_line(tmp_path):
    path = write(tmp_path, "name: x\nstages: [\n  - a: 1\n")
    with pytest.raises(NasbenchError, match=r"YAML does not parse at line \d+"):
        nasbench.load_space(path)


def test_not_a_mapping_and_missing_file(tmp_path):
    with pytest.raises(NasbenchError, match="must be a mapping"):
        nasbench.load_space(write(tmp_path, "- just\n- a list\n"))
    with pytest.raises(NasbenchError, match="does not exist"):
        nasbench.load_space(tmp_path / "nope.yaml")
    with pytest.raises(NasbenchError, match="unknown search space 'nope'; shipped spaces are"):
        nasbench.load_space("nope")


def test_compound_rounding_matches_efficientnet():
    assert [round_width(c * 1.1) for c in (32, 16, 24, 40, 80, 112, 192, 320, 1280)] == [
        32,
        16,
        24,
        48,
        88,
        120,
        208,
        352,
        1408,
    ]
    assert round_width(16 * 1.2) == 24  # rounding down to 16 would lose more than 10%
    assert [round_depth(r, 1.4) for r in (1, 2, 2, 3, 3, 4, 1)] == [2, 3, 3, 5, 5, 6, 2]


# --- the shipped spaces' design rules (properties of our spaces, not validation rules) ------------------

# The reference each shipped space is built around: the dearest of its reference points.
DEAREST_REFERENCE = {
    "efficientnet": "b3",
    "efficientnetv2": "v2_s",
    "mobile": "mobilenetv2",
    "tiny": "tiny_ref",
    "nas-bench-macro": "k3e3",
}


def test_largest_subnet_costs_at_most_twice_the_dearest_reference(space):
    refs = {name: count(space.reference(name)).macs for name in space.references}
    assert max(refs, key=refs.get) == DEAREST_REFERENCE[space.name]
    largest = space.largest()
    assert largest.resolution == max(space.resolutions)
    assert count(largest).macs <= 2 * max(refs.values()), f"{space.name}: {count(largest).macs:,} MACs"
    # largest() is the space's dearest point (no seeded sample costs more): the bound covers the space
    assert max(count(space.sample(seed)).macs for seed in range(200)) <= count(largest).macs


def test_fused_mbconv_only_in_early_stages_at_kernel_3(space):
    """Where EfficientNetV2 puts Fused-MBConv: a run of the first stages (at most half of them), kernel 3."""
    fused = [i for i, stage in enumerate(space.stages) if "fused_mbconv" in stage.blocks]
    assert fused == list(range(len(fused))) and len(fused) <= len(space.stages) // 2, fused
    assert all(space.stages[i].kernels == (3,) for i in fused)


def test_spaces_reach_below_and_above_their_references(space):
    """A real search space around its references: cheaper and dearer subnets than each of them."""
    low, high = count(space.smallest()).macs, count(space.largest()).macs
    for name in space.references:
        assert low < count(space.reference(name)).macs < high, name


def test_a_users_space_outside_our_design_rules_still_loads(tmp_path):
    """The 2x bound and the Fused-MBConv rule describe the shipped spaces; a valid user space may break both."""
    big = mutate(lambda d: d["stages"][0].update(kernel=[3, 5, 7], expand=[1, 6], width=[16, 64]))
    space = nasbench.load_space(write(tmp_path, big))
    assert space.stages[0].kernels == (3, 5, 7) and "fused_mbconv" in space.stages[0].blocks
    assert count(space.largest()).macs > 2 * count(space.reference("ref")).macs
    assert space.contains(space.largest())
