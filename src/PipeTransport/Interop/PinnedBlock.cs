using System.Buffers;

namespace PipeTransport.Interop;

/// <summary>
/// One block of a <see cref="PinnedBlockMemoryPool"/>: an array on the pinned object heap,
/// so handing its address to a system call needs no <c>GCHandle</c>. Disposing returns it to the pool.
/// </summary>
internal sealed unsafe class PinnedBlock : MemoryManager<byte>
{
    private readonly byte[] _array;
    private readonly PinnedBlockMemoryPool _pool;

    public PinnedBlock(PinnedBlockMemoryPool pool, int size)
    {
        _pool = pool;
        _array = GC.AllocateUninitializedArray<byte>(size, pinned: true);
    }

    public override Span<byte> GetSpan() => _array;

    public override MemoryHandle Pin(int elementIndex = 0)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan((uint)elementIndex, (uint)_array.Length, nameof(elementIndex));
        fixed (byte* p = _array)
        {
            // The array lives on the pinned object heap: its address never changes.
            return new MemoryHandle(p + elementIndex);
        }
    }

    public override void Unpin()
    {
    }

    protected override bool TryGetArray(out ArraySegment<byte> segment)
    {
        segment = new ArraySegment<byte>(_array);
        return true;
    }

    protected override void Dispose(bool disposing) => _pool.Return(this);
}
