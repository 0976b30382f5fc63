using System.Buffers;
using System.Collections.Concurrent;
using PipeTransport.Interop;

namespace PipeTransport.Buffers;

/// <summary>
/// A pool of fixed-size blocks on the pinned object heap (like Kestrel's PinnedBlockMemoryPool).
/// Blocks are created on demand, so a pool nobody reads into holds nothing, and returned blocks are
/// kept for reuse up to a cap.
/// </summary>
internal sealed class PinnedBlockMemoryPool : MemoryPool<byte>
{
    private static readonly ConcurrentDictionary<int, PinnedBlockMemoryPool> Pools = new();
    private readonly ConcurrentQueue<PinnedBlock> _blocks = new();
    private readonly int _maxCached;
    private int _cached;
    private long _outstanding;

    public PinnedBlockMemoryPool(int blockSize, int maxCachedBytes = 64 << 20)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(blockSize, 1024);
        BlockSize = blockSize;
        _maxCached = Math.Max(1, maxCachedBytes / blockSize);
    }

    public int BlockSize { get; }

    public override int MaxBufferSize => BlockSize;

    /// <summary>Blocks rented and not yet returned (what connections hold right now).</summary>
    public long Outstanding => Interlocked.Read(ref _outstanding);

    /// <summary>The process-wide pool for a block size.</summary>
    public static PinnedBlockMemoryPool ForBlockSize(int blockSize) =>
        Pools.GetOrAdd(blockSize, static size => new PinnedBlockMemoryPool(size));

    public override IMemoryOwner<byte> Rent(int minBufferSize = -1)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(minBufferSize, BlockSize);
        Interlocked.Increment(ref _outstanding);
        if (_blocks.TryDequeue(out PinnedBlock? block))
        {
            Interlocked.Decrement(ref _cached);
            return block;
        }

        return new PinnedBlock(this, BlockSize);
    }

    internal void Return(PinnedBlock block)
    {
        Interlocked.Decrement(ref _outstanding);
        if (Interlocked.Increment(ref _cached) <= _maxCached)
        {
            _blocks.Enqueue(block);
        }
        else
        {
            Interlocked.Decrement(ref _cached);
        }
    }

    protected override void Dispose(bool disposing)
    {
    }
}
