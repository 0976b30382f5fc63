using System.Buffers;
using System.IO.Pipelines;
using NUnit.Framework;
using PipeTransport.Connection;
using PipeTransport.Interop;

namespace PipeTransport.Tests;

/// <summary>
/// A pipe's read end: a one-shot epoll registration re-armed when a reader parks, and an Input that reads
/// on demand, on the reader's own thread.
/// </summary>
public sealed class ReadOnDemandTests
{
    [TestCase(true), TestCase(false), CancelAfter(10_000)]
    public async Task APipesReadEndReadOnDemandIsRegisteredOneShotUntilItReadsAhead(bool onDemand, CancellationToken ct)
    {
        var (read, write) = FdTestHelpers.Pipe();
        var options = new FdConnectionOptions { ReadPipesOnDemand = onDemand };
        await using FdConnection reader = FdConnection.FromFd(read, options), writer = FdConnection.FromFd(write, options);
        Assert.That((reader.InputChannel.IsPipeReadEnd(), writer.InputChannel.IsPipeReadEnd()), Is.EqualTo((true, false)));
        Assert.That(reader.InputChannel.OneShotRead, Is.False, "nothing read yet: the fd belongs to InputFd");

        Assert.That((int)FdTestHelpers.WriteOnce(write.Fd, new byte[] { 1, 2, 3 }), Is.EqualTo(3));
        ReadResult first = await reader.Input.ReadAsync(ct);
        reader.Input.AdvanceTo(first.Buffer.End);
        Assert.That(reader.InputChannel.OneShotRead, Is.EqualTo(onDemand));

        // ReadAtLeastAsync needs more than one read(2) may bring: the loop reads ahead, epoll reports every edge.
        Task<ReadResult> atLeast = reader.Input.ReadAtLeastAsync(2, ct).AsTask();
        Assert.That(reader.InputChannel.OneShotRead, Is.False);
        Assert.That((int)FdTestHelpers.WriteOnce(write.Fd, new byte[] { 4 }), Is.EqualTo(1));
        Assert.That((int)FdTestHelpers.WriteOnce(write.Fd, new byte[] { 5 }), Is.EqualTo(1));
        ReadResult second = await atLeast;
        Assert.That(second.Buffer.ToArray(), Is.EqualTo(new byte[] { 4, 5 }));
        reader.Input.AdvanceTo(second.Buffer.End);

        var (a, b) = SocketPair();
        await using FdConnection socket = FdConnection.FromFd(a);
        Assert.That(socket.InputChannel.IsPipeReadEnd(), Is.False);
        b.Dispose();
    }

    /// <summary>
    /// Bytes that arrive after the read said EAGAIN but before the reader parked bring no edge of their own
    /// to a disarmed one-shot registration: re-arming at the park reports them. Without it the second
    /// read never completes.
    /// </summary>
    [Test, CancelAfter(10_000)]
    public async Task BytesThatCameWhileDisarmedWakeTheReaderThatParks(CancellationToken ct)
    {
        var (read, write) = FdTestHelpers.Pipe();
        FdChannel channel = FdChannel.Adopt(read, ReactorGroup.Default.Next(), disposeHandle: false);
        channel.SetOneShotRead(true);
        using var raw = new RawFd(channel, ownsChannel: true);
        byte[] buffer = new byte[16];
        for (int round = 0; round < 3; round++)
        {
            int attempts = 0;
            nint got = 0;
            await raw.ReadAsync(fd =>
            {
                got = FdTestHelpers.ReadOnce(fd, buffer);
                if (got == -Libc.EAGAIN && attempts++ == 0)
                {
                    // After EAGAIN, before the park: the byte's edge fires now, or (disarmed) not at all.
                    Assert.That((int)FdTestHelpers.WriteOnce(write.Fd, new byte[] { (byte)round }), Is.EqualTo(1));
                }

                return got != -Libc.EAGAIN;
            }, ct);
            Assert.That(((int)got, buffer[0]), Is.EqualTo((1, (byte)round)));
        }

        write.Dispose();
        read.Dispose();
    }

    /// <summary>
    /// Input of a pipe reads on demand: bytes already in the kernel are read by the read that asks for them,
    /// which therefore completes before it returns, every time, with nothing read ahead of the reader.
    /// </summary>
    [Test, CancelAfter(20_000)]
    public async Task AReadOfBytesInTheKernelCompletesBeforeItReturns(CancellationToken ct)
    {
        var (read, write) = FdTestHelpers.Pipe();
        await using FdConnection connection = FdConnection.FromFd(read);
        PipeReader input = connection.Input;
        for (int i = 0; i < 200; i++)
        {
            byte[] chunk = FdTestHelpers.RandomBytes(1000 + i, i);
            Assert.That((int)FdTestHelpers.WriteOnce(write.Fd, chunk), Is.EqualTo(chunk.Length));
            ValueTask<ReadResult> pending = input.ReadAsync(ct);
            Assert.That(pending.IsCompleted, Is.True, $"read {i} waited for another thread");
            ReadResult result = await pending;
            Assert.That(result.Buffer.ToArray(), Is.EqualTo(chunk));
            input.AdvanceTo(result.Buffer.End);
            Assert.That(Sys.BytesAvailable(LinuxSyscalls.Instance, read.Fd), Is.Zero);
        }

        // Nothing in the kernel: the read waits for the fd, and a write wakes it.
        ValueTask<ReadResult> waiting = input.ReadAsync(ct);
        Assert.That(waiting.IsCompleted, Is.False);
        Assert.That((int)FdTestHelpers.WriteOnce(write.Fd, new byte[] { 42 }), Is.EqualTo(1));
        ReadResult last = await waiting;
        Assert.That(last.Buffer.ToArray(), Is.EqualTo(new byte[] { 42 }));
        input.AdvanceTo(last.Buffer.End);
        write.Dispose();
        last = await input.ReadAsync(ct);
        Assert.That(last.IsCompleted, Is.True);
        input.AdvanceTo(last.Buffer.End);
    }

    /// <summary>
    /// A reader that examines everything and consumes nothing until a frame is whole, ReadAtLeastAsync and a
    /// streaming copy all get every byte (the loop reads ahead for the last two), and EOF comes through.
    /// </summary>
    [TestCase("frames"), TestCase("atleast"), TestCase("copy"), CancelAfter(30_000)]
    public async Task EveryWayOfReadingGetsEveryByte(string way, CancellationToken ct)
    {
        var (read, write) = FdTestHelpers.Pipe();
        await using FdConnection connection = FdConnection.FromFd(read);
        byte[] data = FdTestHelpers.RandomBytes(3 << 20, 9);
        Assert.That(Sys.SetNonBlocking(write.Fd, false), Is.GreaterThanOrEqualTo(0)); // the writer blocks while the pipe is full
        Task writing = Task.Run(() =>
        {
            try
            {
                for (int offset = 0; offset < data.Length;)
                {
                    int w = (int)FdTestHelpers.WriteOnce(write.Fd, data.AsMemory(offset, Math.Min(7777, data.Length - offset)));
                    Assert.That(w, Is.GreaterThan(0));
                    offset += w;
                }
            }
            finally
            {
                write.Dispose(); // EOF, or the end of a failed writer, reaches the reader
            }
        }, ct);

        byte[] received;
        PipeReader input = connection.Input;
        if (way == "copy")
        {
            var sink = new MemoryStream();
            await input.CopyToAsync(sink, ct);
            received = sink.ToArray();
        }
        else
        {
            var sink = new MemoryStream();
            const int frame = 100_000;
            while (true)
            {
                ReadResult result = way == "atleast" ? await input.ReadAtLeastAsync(frame, ct) : await input.ReadAsync(ct);
                long whole = result.IsCompleted ? result.Buffer.Length : result.Buffer.Length / frame * frame;
                foreach (ReadOnlyMemory<byte> segment in result.Buffer.Slice(0, whole))
                {
                    sink.Write(segment.Span);
                }

                input.AdvanceTo(result.Buffer.GetPosition(whole), result.Buffer.End);
                if (result.IsCompleted)
                {
                    break;
                }
            }

            received = sink.ToArray();
        }

        await writing;
        Assert.That(received.Length, Is.EqualTo(data.Length));
        Assert.That(received, Is.EqualTo(data));
    }

    /// <summary>
    /// The end of the direction wakes the loop parked for demand; a wake-up that comes while the loop is
    /// between its flush and its park (it saw the direction running just before) is kept, not lost.
    /// </summary>
    [Test, CancelAfter(10_000)]
    public async Task AWakeUpBeforeTheLoopParksIsKept(CancellationToken ct)
    {
        var demand = new ReceiveDemand();
        demand.Wake();
        ValueTask early = demand.WaitAsync();
        Assert.That(early.IsCompleted, Is.True, "the wake-up that came before the park was lost");
        await early;

        ValueTask parked = demand.WaitAsync();
        Assert.That(parked.IsCompleted, Is.False, "one wake-up lets the loop through once");
        demand.Wake();
        await parked.AsTask().WaitAsync(ct);

        demand.Demand();
        demand.Wake(); // already demanded: one pass through, not two
        await demand.WaitAsync();
        Assert.That(demand.WaitAsync().IsCompleted, Is.False);
        demand.TurnOff();
    }

    /// <summary>
    /// The application aborts the connection as soon as a read that waited for the fd completes, while the
    /// receive loop is on its way from that flush to its park: disposal ends every time. Inline, the abort
    /// runs inside the loop's flush; on the thread pool it races it.
    /// </summary>
    [TestCase(true, 50), TestCase(false, 500), CancelAfter(60_000)]
    public async Task AnAbortRightAfterAReadNeverLeavesTheLoopParked(bool inlineApplication, int rounds, CancellationToken ct)
    {
        var options = new FdConnectionOptions { ApplicationScheduler = inlineApplication ? PipeScheduler.Inline : PipeScheduler.ThreadPool };
        for (int i = 0; i < rounds; i++)
        {
            var (read, write) = FdTestHelpers.Pipe();
            using (write)
            {
                FdConnection connection = FdConnection.FromFd(read, options);
                PipeReader input = connection.Input;
                Assert.That((int)FdTestHelpers.WriteOnce(write.Fd, new byte[] { 1 }), Is.EqualTo(1));
                ReadResult first = await input.ReadAsync(ct); // read on demand, inline: the loop parks after it
                input.AdvanceTo(first.Buffer.End);

                ValueTask<ReadResult> pending = input.ReadAsync(ct); // nothing in the kernel: the loop waits for the fd
                Assert.That((int)FdTestHelpers.WriteOnce(write.Fd, new byte[] { 2 }), Is.EqualTo(1));
                ReadResult second = await pending;
                connection.Abort();
                input.AdvanceTo(second.Buffer.End);
                await connection.DisposeAsync().AsTask().WaitAsync(ct);
                await Task.Yield(); // off the reactor thread an inline continuation ran on
            }
        }
    }

    private static (SafeFdHandle A, SafeFdHandle B) SocketPair()
    {
        int r = Mono.Unix.Native.Syscall.socketpair(Mono.Unix.Native.UnixAddressFamily.AF_UNIX, Mono.Unix.Native.UnixSocketType.SOCK_STREAM, 0, out int a, out int b);
        Assert.That(r, Is.Zero);
        return (new SafeFdHandle(a), new SafeFdHandle(b));
    }
}
