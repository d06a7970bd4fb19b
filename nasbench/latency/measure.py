"""Honest latency measurement: eval mode, inference mode, warm-up, pinned threads, many repeats.

Every figure comes with the ``Context`` it was measured in (device name, torch version, dtype, batch,
memory format, threads), and as a ``Stats`` of its repeats (median and spread), never a single mean.

On CPU each call is timed with ``time.perf_counter_ns`` under a fixed intra-op thread count (1 by default:
batch-1 latency on a shared machine is most repeatable on one core, and the count is recorded). On a
machine shared with other jobs, ``clock="cpu"`` (one thread only) times each call by the CPU time of the
measuring thread instead: the time the model actually ran, which is its wall-clock latency on an idle
core, without the time the scheduler gave the core to other jobs. The clock is part of the context. On CUDA
each call is bracketed by CUDA events and the stream is synchronized before the times are read;
``cudnn.benchmark`` is on, so warm-up runs pick the algorithm for each input shape before timing starts.
"""

from __future__ import annotations

import platform
import random
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from nasbench.arch import Arch
from nasbench.build import build
from nasbench.errors import NasbenchError

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
DEVICES = ("cpu", "cuda")
CLOCKS = ("wall", "cpu")
MIN_ROUNDS = 3  # interleaved rounds measured even when a time limit has passed


@dataclass(frozen=True)
class Context:
    """Where and how a latency was measured; two figures compare only under equal contexts."""

    device: str  # "cpu" or "cuda"
    device_name: str  # CPU model from /proc/cpuinfo, or torch.cuda.get_device_name()
    torch: str  # torch.__version__
    dtype: str  # one of DTYPES
    batch: int  # images per forward pass
    memory_format: str  # "contiguous" or "channels_last"
    threads: int  # intra-op CPU threads torch ran with (on CUDA: the host's, for the record)
    clock: str  # "wall" (perf_counter / CUDA events) or "cpu" (the measuring thread's CPU time)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Context:
        try:
            return cls(**{k: d[k] for k in cls.__dataclass_fields__})
        except (KeyError, TypeError) as e:
            raise NasbenchError(f"latency context is missing field {e}") from None

    def differences(self, other: Context) -> list[str]:
        """The fields that differ, as ``name: mine vs theirs`` phrases."""
        mine, theirs = self.to_dict(), other.to_dict()
        return [f"{k}: {mine[k]!r} vs {theirs[k]!r}" for k in mine if mine[k] != theirs[k]]

    @property
    def slug(self) -> str:
        """A file-name-safe tag of device, dtype, batch (and layout, threads) for table names."""
        name = "".join(c if c.isalnum() else "-" for c in self.device_name.lower()).strip("-")
        while "--" in name:
            name = name.replace("--", "-")
        threads = f"-{self.threads}t" if self.device == "cpu" else ""
        layout = "-cl" if self.memory_format == "channels_last" else ""
        clock = "-cputime" if self.clock == "cpu" else ""
        return f"{self.device}-{name}{threads}{clock}_{self.dtype}{layout}_b{self.batch}"


@dataclass(frozen=True)
class Machine:
    """Which machine a latency correction predicts milliseconds of.

    Two machines with the same CPU model still differ (a stored correction predicted another host with the
    same CPU at 67% MAPE, ranking intact), so the host name counts; so do the torch version and, on CPU,
    the intra-op threads. A host name is only as stable as the host: a fresh container is another machine.
    """

    hostname: str
    device: str  # "cpu" or "cuda"
    device_name: str  # CPU model, or the GPU's name ("no CUDA device" on a host without one)
    torch: str
    threads: int  # intra-op threads the figures were measured with (compared on CPU only)

    @classmethod
    def here(cls, device: str, threads: int) -> Machine:
        """This host, measuring on ``device`` with ``threads`` intra-op threads."""
        if device == "cuda":
            name = torch.cuda.get_device_name() if torch.cuda.is_available() else "no CUDA device"
        else:
            name = cpu_name()
        return cls(socket.gethostname(), device, name, torch.__version__, threads)

    def differences(self, other: Machine) -> list[str]:
        """The fields that differ, as ``name: mine vs theirs`` phrases (threads only on CPU)."""
        mine, theirs = asdict(self), asdict(other)
        if self.device == other.device == "cuda":  # a GPU's figures do not depend on the host's threads
            del mine["threads"], theirs["threads"]
        return [f"{k} {mine[k]!r} vs {theirs[k]!r}" for k in mine if mine[k] != theirs[k]]

    def describe(self) -> str:
        threads = f", {self.threads} thread(s)" if self.device == "cpu" else ""
        return f"host {self.hostname} ({self.device_name}{threads}, torch {self.torch})"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Machine:
        try:
            return cls(**{k: d[k] for k in cls.__dataclass_fields__})
        except (KeyError, TypeError) as e:
            raise NasbenchError(f"latency machine record is missing field {e}") from None


def cpu_name() -> str:
    """The CPU model as /proc/cpuinfo names it (falls back to ``platform`` where there is no procfs)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown cpu"


def make_context(
    device: str = "cpu",
    dtype: str = "float32",
    batch: int = 1,
    channels_last: bool = False,
    threads: int | None = None,
    clock: str = "wall",
) -> Context:
    """Validate the measuring options and describe the device; ``cuda`` without CUDA is an error."""
    if device not in DEVICES:
        raise NasbenchError(f"--device must be one of {', '.join(DEVICES)}, got {device!r}")
    if dtype not in DTYPES:
        raise NasbenchError(f"--dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    if batch < 1:
        raise NasbenchError(f"--batch must be positive, got {batch}")
    if threads is not None and threads < 1:
        raise NasbenchError(f"--threads must be positive, got {threads}")
    if clock not in CLOCKS:
        raise NasbenchError(f"--clock must be one of {', '.join(CLOCKS)}, got {clock!r}")
    if clock == "cpu" and (device != "cpu" or (threads or 1) != 1):
        raise NasbenchError("--clock cpu counts the CPU time of the one measuring thread: use --device cpu --threads 1")
    if device == "cuda":
        if not torch.cuda.is_available():
            raise NasbenchError("--device cuda was asked for, but this torch sees no CUDA device; use --device cpu")
        name, threads = torch.cuda.get_device_name(), torch.get_num_threads()
    else:
        name, threads = cpu_name(), threads or 1
    return Context(
        device=device,
        device_name=name,
        torch=torch.__version__,
        dtype=dtype,
        batch=batch,
        memory_format="channels_last" if channels_last else "contiguous",
        threads=threads,
        clock=clock,
    )


@dataclass(frozen=True)
class Stats:
    """Median and spread of repeated timings, in milliseconds."""

    median_ms: float
    p10_ms: float
    p90_ms: float
    q1_ms: float
    q3_ms: float
    n: int

    @classmethod
    def of(cls, times_ms: Sequence[float]) -> Stats:
        if not len(times_ms):
            raise ValueError("no timings")
        p10, q1, med, q3, p90 = np.percentile(np.asarray(times_ms, dtype=float), [10, 25, 50, 75, 90])
        return cls(float(med), float(p10), float(p90), float(q1), float(q3), len(times_ms))

    @property
    def iqr_ms(self) -> float:
        return self.q3_ms - self.q1_ms

    @property
    def rel_iqr(self) -> float:
        """Interquartile range relative to the median: the noise of this figure."""
        return self.iqr_ms / self.median_ms if self.median_ms > 0 else 0.0

    def to_dict(self, digits: int = 5) -> dict:
        d = {k: round(v, digits) if isinstance(v, float) else v for k, v in asdict(self).items()}
        d["iqr_ms"] = round(self.iqr_ms, digits)
        return d


@contextmanager
def pinned(ctx: Context) -> Iterator[None]:
    """Fix the thread count (CPU) or turn on ``cudnn.benchmark`` (CUDA) while measuring; restore after."""
    threads, bench = torch.get_num_threads(), torch.backends.cudnn.benchmark
    try:
        if ctx.device == "cpu":
            torch.set_num_threads(ctx.threads)
        else:
            torch.backends.cudnn.benchmark = True
        yield
    finally:
        torch.set_num_threads(threads)
        torch.backends.cudnn.benchmark = bench


def prepare(model: nn.Module, input_shape: tuple[int, ...], ctx: Context) -> tuple[nn.Module, torch.Tensor]:
    """The model in eval mode on the context's device, dtype and layout, and a random input for it."""
    fmt = torch.channels_last if ctx.memory_format == "channels_last" else torch.contiguous_format
    dtype = DTYPES[ctx.dtype]
    model = model.eval().to(device=ctx.device, dtype=dtype, memory_format=fmt)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(input_shape, generator=gen).to(device=ctx.device, dtype=dtype, memory_format=fmt)
    return model, x


def time_calls(fn: Callable[[torch.Tensor], object], x: torch.Tensor, ctx: Context, n: int) -> list[float]:
    """Milliseconds of ``n`` calls of ``fn(x)``, each timed on its own (call inside ``inference_mode``)."""
    if ctx.device == "cuda":
        starts = [torch.cuda.Event(enable_timing=True) for _ in range(n)]
        ends = [torch.cuda.Event(enable_timing=True) for _ in range(n)]
        torch.cuda.synchronize()
        for start, end in zip(starts, ends, strict=True):
            start.record()
            fn(x)
            end.record()
        torch.cuda.synchronize()  # events are only readable once the work they bracket has finished
        return [s.elapsed_time(e) for s, e in zip(starts, ends, strict=True)]
    clock = time.thread_time_ns if ctx.clock == "cpu" else time.perf_counter_ns
    out = []
    for _ in range(n):
        t0 = clock()
        fn(x)
        out.append((clock() - t0) / 1e6)
    return out


def warm_up(fn: Callable[[torch.Tensor], object], x: torch.Tensor, ctx: Context, n: int) -> None:
    """Run ``fn`` ``n`` times untimed (allocator, oneDNN primitives, cudnn.benchmark's algorithm choice)."""
    for _ in range(max(1, n)):
        fn(x)
    if ctx.device == "cuda":
        torch.cuda.synchronize()


def measure_module(
    model: nn.Module, input_shape: tuple[int, ...], ctx: Context, *, warmup: int = 10, repeats: int = 100
) -> Stats:
    """Latency of one module on one input shape: warm-up, then ``repeats`` individually timed calls."""
    with pinned(ctx), torch.inference_mode():
        model, x = prepare(model, input_shape, ctx)
        warm_up(model, x, ctx, warmup)
        return Stats.of(time_calls(model, x, ctx, repeats))


def measure_arch(arch: Arch, ctx: Context, *, num_classes: int = 1000, warmup: int = 10, repeats: int = 100) -> Stats:
    """End-to-end latency of ``build(arch)`` on a batch of ``ctx.batch`` images at ``arch.resolution``."""
    shape = (ctx.batch, 3, arch.resolution, arch.resolution)
    return measure_module(build(arch, num_classes), shape, ctx, warmup=warmup, repeats=repeats)


def measure_interleaved(
    archs: Sequence[Arch],
    ctx: Context,
    *,
    num_classes: int = 1000,
    rounds: int = 20,
    per_round: int = 5,
    warmup: int = 5,
    seed: int = 0,
    seconds: float | None = None,
    on_round: Callable[[int], None] | None = None,
) -> list[Stats]:
    """End-to-end latencies of many archs, measured in rounds that visit them in a fresh random order.

    A burst of background load on a shared machine then hits every arch alike instead of skewing the few
    that happened to be measured during it; each arch's figure is the median over all its rounds. With
    ``seconds``, measuring stops after the round that passes that time (preparing the models included),
    but never before ``MIN_ROUNDS`` rounds.
    """
    deadline = None if seconds is None else time.monotonic() + seconds
    rng = random.Random(seed)
    times: list[list[float]] = [[] for _ in archs]
    with pinned(ctx), torch.inference_mode():
        prepared = []
        for a in archs:
            model, x = prepare(build(a, num_classes), (ctx.batch, 3, a.resolution, a.resolution), ctx)
            warm_up(model, x, ctx, warmup)
            prepared.append((model, x))
        for r in range(rounds):
            order = list(range(len(archs)))
            rng.shuffle(order)
            for i in order:
                times[i] += time_calls(prepared[i][0], prepared[i][1], ctx, per_round)
            if on_round:
                on_round(r + 1)
            if deadline is not None and r + 1 >= MIN_ROUNDS and time.monotonic() >= deadline:
                break
    return [Stats.of(t) for t in times]
