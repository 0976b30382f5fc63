using System.Buffers;
using System.IO.Pipelines;
using System.Runtime.InteropServices;
using NUnit.Framework;
using PipeTransport.Interop;

namespace PipeTransport.Tests;

/// <summary>
/// The block pool's cache: its limit, and eviction of the blocks it did not need. The policy is driven
/// one tick at a time (<see cref="PinnedBlockMemoryPool.EvictIdleBlocks"/>) on pools whose timer never
/// fires, so it is exact; one test checks that the timer drives it.
/// </summary>
public sealed class PinnedBlockMemoryPoolTests
{
    private const int BlockSize = 4096;

    private static PinnedBlockMemoryPool NewPool(long maxCachedBytes = PinnedBlockMemoryPool.DefaultMaxCachedBytes) =>
        new(BlockSize, maxCachedBytes, Timeout.InfiniteTimeSpan);

    private static List<IMemoryOwner<byte>> Rent(PinnedBlockMemoryPool pool, int count) =>
        Enumerable.Range(0, count).Select(_ => pool.Rent()).ToList();

    private static void Return(List<IMemoryOwner<byte>> blocks) => blocks.ForEach(b => b.Dispose());

    [Test, CancelAfter(10_000)]
    public void An_idle_pool_lets_go_of_every_block_at_the_first_tick_without_rents()
    {
        using PinnedBlockMemoryPool pool = NewPool();
        Return(Rent(pool, 100)); // a burst, in the period before the first tick
        Assert.That(pool.CachedBlocks, Is.EqualTo(100));

        Assert.That(pool.EvictIdleBlocks(), Is.Zero, "the burst needed every block at its peak");
        Assert.That(pool.EvictIdleBlocks(), Is.EqualTo(100), "a period without rents lets go of all of them");
        Assert.That(pool.CachedBytes, Is.Zero);
    }

    [Test, CancelAfter(10_000)]
    public void A_steady_load_keeps_the_blocks_it_uses_and_sheds_the_rest_tick_by_tick()
    {
        using PinnedBlockMemoryPool pool = NewPool();
        List<IMemoryOwner<byte>> first = Rent(pool, 100);
        var made = first.ToHashSet();
        Return(first);
        pool.EvictIdleBlocks(); // the burst's period

        // Every period the load holds 60 blocks at once: 40 idle blocks, then half of what stays idle, go.
        var cached = new List<int>();
        for (int tick = 0; tick < 12; tick++)
        {
            List<IMemoryOwner<byte>> held = Rent(pool, 60);
            Assert.That(held, Is.SubsetOf(made), "the load is served from the cache, never from new blocks");
            Return(held);
            pool.EvictIdleBlocks();
            cached.Add(pool.CachedBlocks);
        }

        Assert.That(cached.Take(3), Is.EqualTo(new[] { 80, 70, 65 }));
        Assert.That(cached.Last(), Is.EqualTo(60), $"cache after each tick: {string.Join(", ", cached)}");
    }

    [Test, CancelAfter(10_000)]
    public void The_cache_holds_at_most_its_limit()
    {
        using PinnedBlockMemoryPool pool = NewPool(maxCachedBytes: 10 * BlockSize);
        List<IMemoryOwner<byte>> blocks = Rent(pool, 25);
        Assert.That(pool.Outstanding, Is.EqualTo(25));
        Return(blocks);
        Assert.That((pool.CachedBlocks, pool.CachedBytes, pool.Outstanding), Is.EqualTo((10, 10L * BlockSize, 0L)));

        using PinnedBlockMemoryPool none = NewPool(maxCachedBytes: 0);
        Return(Rent(none, 5));
        Assert.That(none.CachedBlocks, Is.Zero);
    }

    [Test, CancelAfter(20_000)]
    public async Task The_timer_evicts_by_itself(CancellationToken ct)
    {
        using var pool = new PinnedBlockMemoryPool(BlockSize, evictionPeriod: TimeSpan.FromMilliseconds(20));
        Return(Rent(pool, 50));
        while (pool.CachedBlocks > 0)
        {
            await Task.Delay(10, ct);
        }

        Assert.That(pool.CachedBytes, Is.Zero);
    }

    [Test, CancelAfter(10_000)]
    public void The_timer_starts_with_the_first_cached_block_and_stops_at_disposal()
    {
        var pool = new PinnedBlockMemoryPool(BlockSize);
        List<IMemoryOwner<byte>> rented = Rent(pool, 3);
        Assert.That(pool.HasEvictionTimer, Is.False, "renting alone starts no timer (and no timer thread)");
        Return(rented);
        Assert.That(pool.HasEvictionTimer, Is.True);
        pool.Dispose();
        Assert.That(pool.HasEvictionTimer, Is.False);
        Return(Rent(pool, 2));
        Assert.That((pool.HasEvictionTimer, pool.CachedBlocks), Is.EqualTo((false, 0)), "a disposed pool caches nothing and starts no timer");

        using var never = new PinnedBlockMemoryPool(BlockSize, evictionPeriod: Timeout.InfiniteTimeSpan);
        Return(Rent(never, 2));
        Assert.That((never.HasEvictionTimer, never.CachedBlocks), Is.EqualTo((false, 2)));
    }

    [Test, CancelAfter(10_000)]
    public void Disposal_lets_go_of_the_cache_and_the_pool_still_rents()
    {
        PinnedBlockMemoryPool pool = NewPool();
        Return(Rent(pool, 10));
        List<IMemoryOwner<byte>> held = Rent(pool, 3);
        pool.Dispose();
        Assert.That(pool.CachedBlocks, Is.Zero);

        Return(held);
        using IMemoryOwner<byte> late = pool.Rent();
        Assert.That((pool.CachedBlocks, late.Memory.Length), Is.EqualTo((0, BlockSize)));
    }

    [Test, CancelAfter(10_000)]
    public void The_process_wide_pools_have_the_documented_defaults_and_outlive_dispose()
    {
        var pool = (PinnedBlockMemoryPool)new FdConnectionOptions().MemoryPool;
        Assert.That((pool.BlockSize, pool.MaxCachedBytes, pool.EvictionPeriod),
            Is.EqualTo((64 * 1024, PinnedBlockMemoryPool.DefaultMaxCachedBytes, PinnedBlockMemoryPool.DefaultEvictionPeriod)));

        pool.Dispose();
        pool.Rent().Dispose();
        Assert.That(pool.CachedBlocks, Is.GreaterThan(0), "still caching");
        Assert.That(() => new PinnedBlockMemoryPool(BlockSize, evictionPeriod: TimeSpan.Zero), Throws.InstanceOf<ArgumentOutOfRangeException>());
        Assert.That(() => new PinnedBlockMemoryPool(BlockSize, maxCachedBytes: -1), Throws.InstanceOf<ArgumentOutOfRangeException>());
    }

    /// <summary>A pool set in the options serves the pipes; null brings back the process-wide one.</summary>
    [Test, CancelAfter(10_000)]
    public async Task A_pool_of_your_own_serves_the_connections_pipes(CancellationToken ct)
    {
        using var own = new PinnedBlockMemoryPool(32 * 1024, maxCachedBytes: 1 << 20);
        var options = new FdConnectionOptions { BufferSize = 32 * 1024, MemoryPool = own };
        Assert.That(options.MemoryPool, Is.SameAs(own));
        Assert.That(options.Clone().MemoryPool, Is.SameAs(own));

        (FdConnection a, FdConnection b) = FdConnection.CreatePair(options);
        await using (a)
        await using (b)
        {
            await a.Output.WriteAsync(new byte[] { 1, 2, 3 }, ct);
            ReadResult result = await b.Input.ReadAsync(ct);
            Assert.That(MemoryMarshal.TryGetMemoryManager(result.Buffer.First, out PinnedBlock? _), Is.True);
            Assert.That(own.Outstanding, Is.GreaterThanOrEqualTo(1), "the unread bytes sit in a block of the pool set");
            b.Input.AdvanceTo(result.Buffer.End);
        }

        options.MemoryPool = null;
        Assert.That(options.MemoryPool, Is.SameAs(PinnedBlockMemoryPool.ForBlockSize(32 * 1024)));
    }

    /// <summary>Any <see cref="MemoryPool{T}"/> works, also one whose buffers are not pinned.</summary>
    [Test, CancelAfter(10_000)]
    public async Task Any_memory_pool_serves_the_pipes(CancellationToken ct)
    {
        var options = new FdConnectionOptions { MemoryPool = MemoryPool<byte>.Shared };
        (FdConnection a, FdConnection b) = FdConnection.CreatePair(options);
        await using (a)
        await using (b)
        {
            byte[] data = FdTestHelpers.RandomBytes(300_000, 5);
            Task send = a.Output.WriteAsync(data, ct).AsTask();
            Assert.That(await FdTestHelpers.ReadExactlyAsync(b.Input, data.Length, ct), Is.EqualTo(data));
            await send;
        }
    }
}
