using System.Buffers;
using System.IO.Pipelines;
using Moq;
using NUnit.Framework;
using PipeTransport.Interop;

namespace PipeTransport.Tests;

/// <summary>
/// Where the send loop runs after the application's flush (with the default inline transport
/// scheduling): inside <c>FlushAsync</c> for an answer to input, on a pool thread for a bulk flush
/// (<see cref="FdConnectionOptions.PoolSendThreshold"/>), gathered with the next ones for flushes
/// right behind a write (<see cref="FdConnectionOptions.CoalesceFlushes"/>). The syscall seam only
/// records which thread made each <c>write</c> and counts them; the bytes go through a real socketpair.
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

    [TestCase(true), TestCase(false), CancelAfter(10_000)]
    public async Task Flushes_right_behind_a_write_leave_together_unless_CoalesceFlushes_is_off(bool coalesce, CancellationToken ct)
    {
        const int flushes = 16, size = 100;
        var writes = new WriteRecorder();
        var (a, b) = FdConnection.CreatePair(new FdConnectionOptions { Syscalls = writes.Syscalls, CoalesceFlushes = coalesce });
        await using (a)
        await using (b)
        {
            await WarmUpAsync(a, b, ct);
            Task<byte[]> received = ReadBytesAsync(b, flushes * size, ct);
            await AnswerAsync(a, b, ct);
            writes.Reset();

            // One turn answering many requests: the first answer goes out inside its flush, the others
            // come right behind it and, gathered, leave in fewer writes (all inline when off).
            for (int i = 0; i < flushes; i++)
            {
                a.Output.Write(Enumerable.Repeat((byte)i, size).ToArray());
                await a.Output.FlushAsync(ct);
                if (i == 0)
                {
                    Assert.That(writes.Count, Is.EqualTo(1), "the answer to input is written inside its flush");
                }
                else if (!coalesce)
                {
                    Assert.That(writes.Count, Is.EqualTo(i + 1), "every flush written inline");
                }
            }

            byte[] bytes = await received;
            Assert.That(bytes, Is.EqualTo(Enumerable.Range(0, flushes).SelectMany(i => Enumerable.Repeat((byte)i, size)).ToArray()), "every byte, in order");
            Assert.That(writes.Count, coalesce ? Is.LessThan(flushes) : Is.EqualTo(flushes));
        }
    }

    [TestCase(true), TestCase(false), CancelAfter(10_000)]
    public async Task Answers_to_pipelined_requests_wait_for_each_other_unless_CoalesceFlushes_is_off(bool coalesce, CancellationToken ct)
    {
        const int requests = 16, size = 100;
        var writes = new WriteRecorder();
        var (a, b) = FdConnection.CreatePair(new FdConnectionOptions { Syscalls = writes.Syscalls, CoalesceFlushes = coalesce });
        await using (a)
        await using (b)
        {
            await WarmUpAsync(a, b, ct);
            Task<byte[]> received = ReadBytesAsync(b, requests * size, ct);

            // The peer sends every request in one write; the server waits until it holds them all.
            await b.Output.WriteAsync(Enumerable.Range(0, requests).Select(i => (byte)i).ToArray(), ct);
            ReadResult read = await a.Input.ReadAsync(ct);
            while (read.Buffer.Length < requests)
            {
                a.Input.AdvanceTo(read.Buffer.Start, read.Buffer.End);
                read = await a.Input.ReadAsync(ct);
            }

            writes.Reset();
            int caller = Environment.CurrentManagedThreadId;
            for (int i = 0; i < requests; i++)
            {
                if (i > 0)
                {
                    Assert.That(a.Input.TryRead(out read), Is.True, "the rest of the requests are buffered");
                }

                // Parse one request and answer it, as Kestrel does for each pipelined request.
                byte request = read.Buffer.FirstSpan[0];
                a.Input.AdvanceTo(read.Buffer.GetPosition(1));
                a.Output.Write(Enumerable.Repeat(request, size).ToArray());
                ValueTask<FlushResult> flush = a.Output.FlushAsync(ct);
                if (i == 0)
                {
                    bool writtenInside = writes.Count > 0 && writes.FirstThread == caller;
                    Assert.That(writtenInside, Is.EqualTo(!coalesce),
                        coalesce ? "requests remain: the first answer waits for the others" : "written inside its flush");
                }

                await flush;
            }

            byte[] bytes = await received;
            Assert.That(bytes, Is.EqualTo(Enumerable.Range(0, requests).SelectMany(i => Enumerable.Repeat((byte)i, size)).ToArray()), "every byte, in order");
            Assert.That(writes.Count, coalesce ? Is.LessThan(requests) : Is.EqualTo(requests));
        }
    }

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
            await AnswerAsync(a, b, ct); // the flush below answers input: nothing to gather it with
            writes.Reset();
            Task<long> received = ReadAsync(b, size, ct);
            a.Output.Write(new byte[size]);
            int caller = Environment.CurrentManagedThreadId;
            ValueTask<FlushResult> flush = a.Output.FlushAsync(ct);

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

    /// <summary>The peer sends a byte and <paramref name="a"/> reads it: a's next flush answers input.</summary>
    private static async Task AnswerAsync(FdConnection a, FdConnection b, CancellationToken ct)
    {
        await b.Output.WriteAsync(new byte[1], ct);
        Assert.That(await ReadAsync(a, 1, ct), Is.EqualTo(1));
    }

    private static async Task<byte[]> ReadBytesAsync(FdConnection connection, int count, CancellationToken ct)
    {
        var bytes = new List<byte>(count);
        while (bytes.Count < count)
        {
            var result = await connection.Input.ReadAsync(ct);
            foreach (ReadOnlyMemory<byte> segment in result.Buffer)
            {
                bytes.AddRange(segment.Span);
            }

            connection.Input.AdvanceTo(result.Buffer.End);
            if (result.IsCompleted)
            {
                break;
            }
        }

        return [.. bytes];
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
        private int _count;

        public WriteRecorder()
        {
            Mock<ISyscalls> mock = SyscallSeamTests.Forwarding();
            mock.Setup(s => s.Write(It.IsAny<int>(), It.IsAny<ReadOnlySequence<byte>>()))
                .Returns((int fd, ReadOnlySequence<byte> buffer) =>
                {
                    Interlocked.Increment(ref _count);
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

        /// <summary>Writes since <see cref="Reset"/>.</summary>
        public int Count => Volatile.Read(ref _count);

        public void Reset()
        {
            First.Reset();
            Volatile.Write(ref _recorded, 0);
            Volatile.Write(ref _count, 0);
        }
    }
}
