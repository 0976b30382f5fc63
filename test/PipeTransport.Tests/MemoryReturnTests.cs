using System.Buffers;
using System.Diagnostics;
using System.IO.Pipelines;
using NUnit.Framework;
using PipeTransport.Interop;

namespace PipeTransport.Tests;

/// <summary>
/// Memory comes back: after many connections wrote to peers that never read (backpressure holds every
/// flush, each connection holding about <see cref="FdConnectionOptions.OutputPauseThreshold"/> of pool
/// blocks) and were disposed, the process's resident memory returns near where it started once the
/// pool evicted its idle blocks and full GCs ran (forced here; an application gets them as it allocates).
/// </summary>
[NonParallelizable] // measures the resident memory of the process
public sealed class MemoryReturnTests
{
    private const int Connections = 200;
    private const int ChunkSize = 64 * 1024;
    private const long BytesPerConnection = 16L << 20; // never all sent: the peers do not read
    private const long SlackBytes = 50L << 20;

    [Test, CancelAfter(60_000)]
    public async Task Memory_comes_back_after_a_slow_reader_load(CancellationToken ct)
    {
        using var pool = new PinnedBlockMemoryPool(64 * 1024, evictionPeriod: TimeSpan.FromMilliseconds(100));
        await LoadAndRecoverAsync(new FdConnectionOptions { MemoryPool = pool }, pool, TimeSpan.FromSeconds(20), ct);
    }

    /// <summary>With the process-wide pool and its default period: back within two periods.</summary>
    [Test, CancelAfter(120_000)]
    public async Task Memory_comes_back_after_a_slow_reader_load_with_the_defaults(CancellationToken ct)
    {
        var options = new FdConnectionOptions();
        await LoadAndRecoverAsync(options, (PinnedBlockMemoryPool)options.MemoryPool, 2 * PinnedBlockMemoryPool.DefaultEvictionPeriod + TimeSpan.FromSeconds(20), ct);
    }

    private static async Task LoadAndRecoverAsync(FdConnectionOptions options, PinnedBlockMemoryPool pool, TimeSpan deadline, CancellationToken ct)
    {
        // Where it starts: what the GC settles at, less the blocks the pool already caches from earlier
        // tests (it lets them go too; counting them would let a pool that keeps its cache pass).
        long before = await SettledResidentBytesAsync(ct) - pool.CachedBytes;
        long outstandingBefore = pool.Outstanding;
        var connections = new List<FdConnection>(Connections);
        var peers = new List<SafeFdHandle>(Connections);
        var writers = new List<Task>(Connections);
        int stalled = 0;
        byte[] chunk = FdTestHelpers.RandomBytes(ChunkSize, 13);

        async Task WriteAsync(FdConnection connection)
        {
            await Task.Yield();
            try
            {
                for (long sent = 0; sent < BytesPerConnection; sent += ChunkSize)
                {
                    connection.Output.Write(chunk);
                    ValueTask<FlushResult> flush = connection.Output.FlushAsync(CancellationToken.None);
                    bool pending = !flush.IsCompleted;
                    if (pending)
                    {
                        Interlocked.Increment(ref stalled);
                    }

                    FlushResult result = await flush;
                    if (pending)
                    {
                        Interlocked.Decrement(ref stalled);
                    }

                    if (result.IsCompleted || result.IsCanceled)
                    {
                        return;
                    }
                }
            }
            catch (Exception e) when (e is ObjectDisposedException or InvalidOperationException or IOException)
            {
                // torn down under the write
            }
        }

        long peak;
        try
        {
            for (int i = 0; i < Connections; i++)
            {
                int r = Sys.SocketPair(out int fd, out int peer);
                Assert.That(r, Is.Zero, "socketpair");
                peers.Add(new SafeFdHandle(peer));
                connections.Add(FdConnection.FromFd(new SafeFdHandle(fd), options));
                writers.Add(WriteAsync(connections[^1]));
            }

            // Backpressure holds: every connection's flush waits, and stays waiting.
            while (Volatile.Read(ref stalled) < Connections)
            {
                Assert.That(writers.Where(w => w.IsCompleted), Is.Empty, "a writer finished: its peer read");
                await Task.Delay(10, ct);
            }

            peak = ResidentBytes();
            long held = (pool.Outstanding - outstandingBefore) * pool.BlockSize;
            TestContext.Out.WriteLine($"{Connections} connections stalled: {held >> 20} MiB of blocks held, RSS {before >> 20} -> {peak >> 20} MiB");
            Assert.That(held, Is.LessThanOrEqualTo(Connections * (options.OutputPauseThreshold + 2 * ChunkSize)), "each holds about its pause threshold");
            Assert.That(held, Is.GreaterThan(Connections * options.OutputResumeThreshold), "each holds more than its resume threshold: a load worth measuring");
        }
        finally
        {
            foreach (FdConnection connection in connections)
            {
                connection.Abort();
                await connection.DisposeAsync();
            }

            peers.ForEach(p => p.Dispose());
            await Task.WhenAll(writers);
        }

        Assert.That(pool.Outstanding, Is.EqualTo(outstandingBefore), "every block went back to the pool");
        long limit = before + before / 5 + SlackBytes;
        var clock = Stopwatch.StartNew();
        long now;
        // Both: in a process that started big, 20% of it can hide a full cache.
        while (((now = ResidentBytesAfterFullGc()) > limit || pool.CachedBytes > 0) && clock.Elapsed < deadline)
        {
            await Task.Delay(50, ct);
        }

        TestContext.Out.WriteLine($"RSS before {before >> 20} MiB, peak {peak >> 20} MiB, after {now >> 20} MiB ({clock.ElapsedMilliseconds} ms after disposal; limit {limit >> 20} MiB); pool caches {pool.CachedBytes >> 20} MiB");
        Assert.That(pool.CachedBytes, Is.Zero, "an idle pool lets go of every block");
        Assert.That(now, Is.LessThanOrEqualTo(limit), $"RSS {before >> 20} MiB before the load, {peak >> 20} at its peak, {now >> 20} {deadline.TotalSeconds} s after; the pool caches {pool.CachedBytes >> 20} MiB");
    }

    /// <summary>
    /// Resident bytes once full GCs stop lowering them: the GC decommits freed regions gradually, at a
    /// rate per millisecond since its previous collection, so the collections are spaced out.
    /// </summary>
    private static async Task<long> SettledResidentBytesAsync(CancellationToken ct)
    {
        long previous = long.MaxValue;
        long now;
        while ((now = ResidentBytesAfterFullGc()) < previous - (1 << 20))
        {
            previous = now;
            await Task.Delay(100, ct);
        }

        return Math.Min(previous, now);
    }

    private static long ResidentBytesAfterFullGc()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        return ResidentBytes();
    }

    /// <summary>VmRSS of /proc/self/status.</summary>
    private static long ResidentBytes()
    {
        string line = File.ReadLines("/proc/self/status").First(l => l.StartsWith("VmRSS:", StringComparison.Ordinal));
        return long.Parse(line["VmRSS:".Length..].Trim().Split(' ')[0]) * 1024;
    }
}
