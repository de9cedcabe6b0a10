"""Functions exercising every construct the pass must preserve (tests/test_instrument.py)."""

import functools
import inspect
import sys


def kinds(a, b=2, /, c=3, *rest, d, e=5, **extra):
    """Every parameter kind."""
    return (a, b, c, rest, d, e, extra)


def implicit(x):
    x + 1


def early(x):
    if x:
        return "early"
    if x is None:
        return
    x = x


def raises(x):
    y = x * 2
    raise ValueError(y)


def raises_deep(x):
    return raises(x)


def catches(x):
    try:
        raises(x)
    except ValueError as exc:
        return exc.args


def gen(n):
    for i in range(n):
        got = yield i
        if got is not None:
            yield ("got", got)
    return "done"


def delegating(n):
    result = yield from gen(n)
    return result


async def coro(x):
    return x * 3


async def awaiting(x):
    return await coro(x) + 1


async def agen(n):
    for i in range(n):
        yield i
    return


def counter():
    count = 0

    def bump(by=1):
        nonlocal count
        count += by
        return count
    return bump


class Base:
    def greet(self, who):
        return f"base {who}"


class Child(Base):
    """A class body is not a function: only its methods are recorded."""

    label = [i * 2 for i in range(3)]

    def greet(self, who):
        return "child " + super().greet(who)

    def klass(self):
        return __class__

    @classmethod
    def make(cls, *args):
        return cls()

    @staticmethod
    def static(v, /):
        return v

    @property
    def prop(self):
        return 42

    def __private(self):
        return "private"

    def call_private(self):
        return self.__private()


def twice(func):
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        return func(*args, **kwargs) * 2
    return wrapper


@twice
def doubled(v):
    """Doubled by a decorator."""
    return v + 1


def defaults(a, b=[], *, c={"k": 1}):  # noqa: B006 - the shared default is what is tested
    b.append(a)
    return b, c


def fact(n):
    return 1 if n <= 1 else n * fact(n - 1)


def frame_depth():
    depth = 0
    frame = sys._getframe()
    while frame is not None:
        depth += 1
        frame = frame.f_back
    return depth


def caller_name():
    return sys._getframe(1).f_code.co_name


def call_caller_name():
    return caller_name()


def current_locals(a, b=1, *args, **kw):
    seen = dict(locals())
    return seen


def shadow_builtins(type, id, hash, locals, len, print, BaseException=None, None_=None):  # noqa: A002
    return (type, id, hash, locals, len, print, BaseException)


def signature_of(f):
    return str(inspect.signature(f))


def deep(n):
    if n == 0:
        return 0
    return deep(n - 1) + 1


square = lambda v: v * v  # noqa: E731 - lambdas stay uninstrumented

comprehension = [x for x in range(3)]


def make_closures():
    value = "cell"

    def reader():
        return value
    return reader


def outer_global():
    global declared_global

    def declared_global():
        return "global qualname"
    return declared_global


def skipped(x):  # kcovdf: skip
    return x
