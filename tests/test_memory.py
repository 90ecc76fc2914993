"""``equinnp.memory.reuse_freed_memory``: large tensors come from the heap and stay there when freed."""

import subprocess
import sys

import pytest

# Run in a fresh process: the option changes the whole process for good.
SCRIPT = """
import ctypes, torch
from equinnp.memory import reuse_freed_memory

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = MallInfo2
SIZE = 24000 * 768 * 4  # 73 MB: SchNet's filters on 64 aspirin molecules

x = torch.empty(24000, 768)
mapped_by_default = libc.mallinfo2().hblkhd
del x
assert reuse_freed_memory()
x = torch.empty(24000, 768)
mapped_after, heap_in_use = libc.mallinfo2().hblkhd, libc.mallinfo2().uordblks
del x
heap_kept = libc.mallinfo2().arena
print(mapped_by_default >= SIZE, mapped_after < SIZE, heap_in_use >= SIZE, heap_kept >= SIZE)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc options (Linux)")
def test_large_tensors_come_from_the_heap_and_are_kept():
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    mapped_by_default, heap_after, in_use, kept = (word == "True" for word in result.stdout.split())
    assert mapped_by_default, "by default glibc maps a 73 MB block of its own"
    assert heap_after and in_use, "after reuse_freed_memory the block comes from the heap"
    assert kept, "and the heap keeps it when the tensor is freed"
