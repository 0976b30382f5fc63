using System.Buffers;
using System.Collections.Concurrent;
using PipeTransport.Interop;

namespace PipeTransport;

/// <summary>
/// A pool of fixed-size blocks on the pinned object heap (like Kestrel's): a system call can take a
/// block's address as it is, with no pin per read or write. Blocks are made on demand, so a pool nobody
/// reads into holds nothing; returned blocks are cached for reuse up to a cap, and blocks the cache
/// holds unused for a whole eviction period are let go, so memory comes back after a burst.
/// </summary>
/// <remarks>
/// <para>
/// Unless <see cref="FdConnectionOptions.MemoryPool"/> is set, connections share one process-wide pool
/// per <see cref="FdConnectionOptions.BufferSize"/>, with <see cref="DefaultMaxCachedBytes"/> and
/// <see cref="DefaultEvictionPeriod"/>; make your own pool for other limits.
/// </para>
/// <para>
/// Eviction: every period, a timer looks at the fewest blocks the cache held since the previous tick:
/// those blocks were not needed at any moment of the period. If nothing was rented in the period, they
/// all go; otherwise half of them go, so a steady load keeps what it uses and its surplus shrinks
/// tick by tick. An evicted block is garbage: its memory goes back to the system at the next full
/// (generation 2) garbage collection, and only once no cached block shares its region of the pinned
/// heap, which is why an idle pool lets go of all its blocks rather than a share.
/// </para>
/// </remarks>
public sealed class PinnedBlockMemoryPool : MemoryPool<byte>
{
    /// <summary>
    /// Bytes of returned blocks a pool caches by default (64 MiB); a block returned to a full cache is
    /// dropped. It bounds what a pool holds after a load that needed more, until eviction lets it go.
    /// </summary>
    public const long DefaultMaxCachedBytes = 64L << 20;

    /// <summary>
    /// The default eviction period (10 s, Kestrel's): long enough that a pool serving bursts a few
    /// seconds apart keeps its blocks, short enough that an idle process gives them back within
    /// two periods.
    /// </summary>
    public static readonly TimeSpan DefaultEvictionPeriod = TimeSpan.FromSeconds(10);

    private static readonly ConcurrentDictionary<int, PinnedBlockMemoryPool> Pools = new();
    private readonly ConcurrentQueue<PinnedBlock> _blocks = new();
    private readonly int _maxCached;
    private readonly bool _processWide;
    private Timer? _timer; // started by the first block cached: a pool that never caches one has no timer
    private int _cached;
    private int _lowWater; // the fewest blocks the cache held since the last eviction tick
    private bool _rentedSinceTick;
    private long _outstanding;
    private volatile bool _disposed;

    /// <summary>A pool of its own, e.g. for <see cref="FdConnectionOptions.MemoryPool"/>.</summary>
    /// <param name="blockSize">Bytes per block (at least 1024); give it the <see cref="FdConnectionOptions.BufferSize"/> of the connections using it.</param>
    /// <param name="maxCachedBytes">Bytes of returned blocks kept for reuse; 0 caches nothing. Default <see cref="DefaultMaxCachedBytes"/>.</param>
    /// <param name="evictionPeriod">How often blocks the cache did not need are let go. Default (null) <see cref="DefaultEvictionPeriod"/>;
    /// <see cref="Timeout.InfiniteTimeSpan"/> never evicts (the cache then stays as large as the largest load left it, up to <paramref name="maxCachedBytes"/>).</param>
    public PinnedBlockMemoryPool(int blockSize, long maxCachedBytes = DefaultMaxCachedBytes, TimeSpan? evictionPeriod = null)
        : this(blockSize, maxCachedBytes, evictionPeriod ?? DefaultEvictionPeriod, processWide: false)
    {
    }

    private PinnedBlockMemoryPool(int blockSize, long maxCachedBytes, TimeSpan evictionPeriod, bool processWide)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(blockSize, 1024);
        ArgumentOutOfRangeException.ThrowIfNegative(maxCachedBytes);
        if (evictionPeriod != Timeout.InfiniteTimeSpan)
        {
            ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(evictionPeriod, TimeSpan.Zero);
        }

        BlockSize = blockSize;
        MaxCachedBytes = maxCachedBytes;
        EvictionPeriod = evictionPeriod;
        _maxCached = (int)Math.Min(int.MaxValue, maxCachedBytes / blockSize);
        _processWide = processWide;
    }

    /// <summary>Bytes per block; also the largest buffer <see cref="Rent"/> gives.</summary>
    public int BlockSize { get; }

    /// <inheritdoc cref="BlockSize"/>
    public override int MaxBufferSize => BlockSize;

    /// <summary>Bytes of returned blocks the pool keeps for reuse at most.</summary>
    public long MaxCachedBytes { get; }

    /// <summary>How often blocks the cache did not need are let go; <see cref="Timeout.InfiniteTimeSpan"/> for never.</summary>
    public TimeSpan EvictionPeriod { get; }

    /// <summary>Bytes of the blocks in the cache right now, waiting to be rented again.</summary>
    public long CachedBytes => (long)Volatile.Read(ref _cached) * BlockSize;

    /// <summary>Blocks rented and not yet returned (what connections hold right now).</summary>
    internal long Outstanding => Interlocked.Read(ref _outstanding);

    internal int CachedBlocks => Volatile.Read(ref _cached);

    /// <summary>Whether the eviction timer runs (for tests).</summary>
    internal bool HasEvictionTimer => Volatile.Read(ref _timer) is not null;

    /// <summary>The process-wide pool for a block size.</summary>
    internal static PinnedBlockMemoryPool ForBlockSize(int blockSize) =>
        Pools.GetOrAdd(blockSize, static size => new PinnedBlockMemoryPool(size, DefaultMaxCachedBytes, DefaultEvictionPeriod, processWide: true));

    /// <summary>A block of <see cref="BlockSize"/> bytes, pinned; disposing it returns it to the pool.</summary>
    /// <param name="minBufferSize">At most <see cref="BlockSize"/>; -1 for the default.</param>
    /// <returns>The block.</returns>
    public override IMemoryOwner<byte> Rent(int minBufferSize = -1)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(minBufferSize, BlockSize);
        Interlocked.Increment(ref _outstanding);
        if (!_rentedSinceTick)
        {
            _rentedSinceTick = true;
        }

        if (_blocks.TryDequeue(out PinnedBlock? block))
        {
            int cached = Interlocked.Decrement(ref _cached);
            int low;
            while (cached < (low = Volatile.Read(ref _lowWater)) && Interlocked.CompareExchange(ref _lowWater, cached, low) != low)
            {
            }

            return block;
        }

        return new PinnedBlock(this, BlockSize);
    }

    internal void Return(PinnedBlock block)
    {
        Interlocked.Decrement(ref _outstanding);
        if (_disposed)
        {
            return;
        }

        if (Interlocked.Increment(ref _cached) <= _maxCached)
        {
            _blocks.Enqueue(block);
            if (_disposed && _blocks.TryDequeue(out _))
            {
                Interlocked.Decrement(ref _cached); // disposal drained the cache meanwhile
            }
            else if (_timer is null && EvictionPeriod != Timeout.InfiniteTimeSpan)
            {
                StartEvictionTimer();
            }
        }
        else
        {
            Interlocked.Decrement(ref _cached);
        }
    }

    /// <summary>
    /// One eviction tick (the timer's work, callable by tests): lets go of blocks the cache held unused
    /// since the previous tick, all of them if nothing was rented meanwhile, else half.
    /// </summary>
    /// <returns>The number of blocks let go.</returns>
    internal int EvictIdleBlocks()
    {
        // Counts read racily against concurrent rents and returns: a block kept or let go by mistake
        // costs one allocation or one tick, never correctness.
        bool rented = _rentedSinceTick;
        _rentedSinceTick = false;
        int idle = Math.Min(Volatile.Read(ref _lowWater), Volatile.Read(ref _cached));
        int toEvict = rented ? (idle + 1) / 2 : idle;
        int evicted = 0;
        while (evicted < toEvict && _blocks.TryDequeue(out _))
        {
            Interlocked.Decrement(ref _cached);
            evicted++;
        }

        Volatile.Write(ref _lowWater, Volatile.Read(ref _cached));
        return evicted;
    }

    private void StartEvictionTimer()
    {
        // The timer holds the pool weakly: a pool nobody references is collected, and its timer with it.
        // No execution context flows into it: it would keep whatever the returning caller's had.
        bool suppress = !ExecutionContext.IsFlowSuppressed();
        if (suppress)
        {
            ExecutionContext.SuppressFlow();
        }

        Timer timer;
        try
        {
            timer = new Timer(OnEvictionTimer, new WeakReference<PinnedBlockMemoryPool>(this), EvictionPeriod, EvictionPeriod);
        }
        finally
        {
            if (suppress)
            {
                ExecutionContext.RestoreFlow();
            }
        }

        // One timer per pool. A disposal that ran meanwhile may not have seen this one: it goes here.
        if (Interlocked.CompareExchange(ref _timer, timer, null) is not null)
        {
            timer.Dispose();
        }
        else if (_disposed && Interlocked.CompareExchange(ref _timer, null, timer) == timer)
        {
            timer.Dispose();
        }
    }

    private static void OnEvictionTimer(object? state)
    {
        if (((WeakReference<PinnedBlockMemoryPool>)state!).TryGetTarget(out PinnedBlockMemoryPool? pool))
        {
            pool.EvictIdleBlocks();
        }
    }

    /// <summary>
    /// Stops eviction and lets go of the cached blocks; blocks returned later are not cached, and
    /// <see cref="Rent"/> still works. The process-wide pools ignore it: every connection with their
    /// block size shares them.
    /// </summary>
    /// <param name="disposing">True when called from <see cref="IDisposable.Dispose"/>.</param>
    protected override void Dispose(bool disposing)
    {
        if (_processWide || _disposed)
        {
            return;
        }

        _disposed = true;
        Interlocked.Exchange(ref _timer, null)?.Dispose();
        while (_blocks.TryDequeue(out _))
        {
            Interlocked.Decrement(ref _cached);
        }
    }
}
