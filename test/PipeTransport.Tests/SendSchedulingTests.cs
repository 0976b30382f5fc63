using System.Buffers;
using Moq;
using NUnit.Framework;
using PipeTransport.Interop;

namespace PipeTransport.Tests;

/// <summary>
/// Where the send loop runs after the application's flush (with the default inline transport
/// scheduling): inside <c>FlushAsync</c> for a message, on a pool thread for a bulk flush
/// (<see cref="FdConnectionOptions.PoolSendThreshold"/>). The syscall seam only records which thread
/// made each <c>write</c>; the bytes go through a real socketpair.
/// </summary>
public class SendSchedulingTests
{
    [Test, CancelAfter(10_000)]
    public Task A_small_flush_is_written_inside_FlushAsync_on_the_flushing_thread(CancellationToken ct) =>
        FlushAndCheckAsync(100, poolSendThreshold: null, expectInline: true, ct);

    [TestCase(64 * 1024), TestCase(1024 * 1024), CancelAfter(10_000)]
    public Task A_bulk_flush_is_written_from_another_thread_while_the_flushing_thread_goes_on(int size, CancellationToken ct) =>
        FlushAndCheckAsync(size, poolSendThreshold: null, expectInline: false, ct);

    [Test, CancelAfter(10_000)]
    public Task PoolSendThreshold_int_MaxValue_writes_every_flush_inline(CancellationToken ct) =>
        FlushAndCheckAsync(64 * 1024, poolSendThreshold: int.MaxValue, expectInline: true, ct);

    [Test, CancelAfter(5000)]
    public void PoolSendThreshold_below_one_is_refused()
    {
        var options = new FdConnectionOptions { PoolSendThreshold = 0 };
        Assert.Throws<ArgumentOutOfRangeException>(() => FdConnection.CreatePair(options));
    }

    /// <summary>
    /// Over a socketpair whose send loop already waits for data, writes <paramref name="size"/> bytes to
    /// Output, flushes, and checks which thread made the first write: this one, before FlushAsync
    /// returned (inline), or another one while this thread is held (pool). Then every byte arrives.
    /// </summary>
    private static async Task FlushAndCheckAsync(int size, int? poolSendThreshold, bool expectInline, CancellationToken ct)
    {
        var writes = new WriteRecorder();
        var options = new FdConnectionOptions { Syscalls = writes.Syscalls };
        if (poolSendThreshold is int threshold)
        {
            options.PoolSendThreshold = threshold;
        }

        var (a, b) = FdConnection.CreatePair(options);
        await using (a)
        await using (b)
        {
            await WarmUpAsync(a, b, ct);
            writes.Reset();
            Task<long> received = ReadAsync(b, size, ct);
            a.Output.Write(new byte[size]);
            int caller = Environment.CurrentManagedThreadId;
            ValueTask<System.IO.Pipelines.FlushResult> flush = a.Output.FlushAsync(ct);

            if (expectInline)
            {
                Assert.That(writes.First.IsSet, Is.True, "written before FlushAsync returned");
                Assert.That(writes.FirstThread, Is.EqualTo(caller));
            }
            else
            {
                // This thread is held here, so the write must come from another one.
                Assert.That(writes.First.Wait(TimeSpan.FromSeconds(5), ct), Is.True, "the send loop wrote");
                Assert.That(writes.FirstThread, Is.Not.EqualTo(caller));
            }

            await flush;
            Assert.That(await received, Is.EqualTo(size));
        }
    }

    /// <summary>The send loop starts on first use of Output: get that (and the peer's receive loop) out of the way.</summary>
    private static async Task WarmUpAsync(FdConnection a, FdConnection b, CancellationToken ct)
    {
        await a.Output.WriteAsync(new byte[1], ct);
        Assert.That(await ReadAsync(b, 1, ct), Is.EqualTo(1));
    }

    private static async Task<long> ReadAsync(FdConnection connection, long count, CancellationToken ct)
    {
        long got = 0;
        while (got < count)
        {
            var result = await connection.Input.ReadAsync(ct);
            got += result.Buffer.Length;
            connection.Input.AdvanceTo(result.Buffer.End);
            if (result.IsCompleted)
            {
                break;
            }
        }

        return got;
    }

    /// <summary>Forwards every call to the kernel and records the thread of the first write after <see cref="Reset"/>.</summary>
    private sealed class WriteRecorder
    {
        private int _recorded;

        public WriteRecorder()
        {
            Mock<ISyscalls> mock = SyscallSeamTests.Forwarding();
            mock.Setup(s => s.Write(It.IsAny<int>(), It.IsAny<ReadOnlySequence<byte>>()))
                .Returns((int fd, ReadOnlySequence<byte> buffer) =>
                {
                    if (Interlocked.Exchange(ref _recorded, 1) == 0)
                    {
                        FirstThread = Environment.CurrentManagedThreadId;
                        First.Set();
                    }

                    return LinuxSyscalls.Instance.Write(fd, buffer);
                });
            Syscalls = mock.Object;
        }

        public ISyscalls Syscalls { get; }

        public ManualResetEventSlim First { get; } = new();

        public int FirstThread { get; private set; }

        public void Reset()
        {
            First.Reset();
            Volatile.Write(ref _recorded, 0);
        }
    }
}
