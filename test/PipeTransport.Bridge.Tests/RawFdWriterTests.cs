using System.Buffers;
using Microsoft.Win32.SafeHandles;
using Mono.Unix.Native;
using NUnit.Framework;

using static PipeTransport.Bridge.Tests.AnonymousPipes;

namespace PipeTransport.Bridge.Tests;

/// <summary>
/// The library's <see cref="RawFdWriter"/> (what the copy engine writes with): whole sequences out
/// through a full pipe, EPIPE as a reset, and where the code after a waiting write runs.
/// </summary>
public sealed class RawFdWriterTests
{
    [TestCase(false), TestCase(true), CancelAfter(20_000)]
    public async Task WritesAMultiSegmentSequenceThroughAFullPipe(bool continueOnReactor, CancellationToken cancellationToken)
    {
        var (readEnd, writeEnd) = Pipe();
        using RawFd fd = RawFd.Create(writeEnd);
        var writer = new RawFdWriter(fd, "pipe", continueOnReactor);
        // 4 MiB in 100 segments of 40 KiB (not a multiple of a page), into a 64 KiB pipe: many waits.
        byte[] data = new byte[100 * 40 * 1024];
        new Random(21).NextBytes(data);
        ReadOnlySequence<byte> sequence = Segments(data, 40 * 1024);
        Assert.That(sequence.IsSingleSegment, Is.False);

        Task<byte[]> received = ReadToEndAsync(readEnd, cancellationToken);
        await writer.WriteAsync(sequence, cancellationToken);
        Assert.That(writer.BytesWritten, Is.EqualTo(data.Length));
        fd.Dispose();
        writeEnd.Dispose();
        Assert.That(await received, Is.EqualTo(data));
    }

    [Test, CancelAfter(10_000)]
    public async Task CompletesSynchronouslyWhenTheFdTakesEverything(CancellationToken cancellationToken)
    {
        var (readEnd, writeEnd) = Pipe();
        using RawFd fd = RawFd.Create(writeEnd);
        var writer = new RawFdWriter(fd);
        ValueTask write = writer.WriteAsync(new ReadOnlySequence<byte>(new byte[1000]), cancellationToken);
        Assert.That(write.IsCompletedSuccessfully, Is.True);
        await write;
        Assert.That(writer.BytesWritten, Is.EqualTo(1000));
        Assert.That(writer.WriteAsync(ReadOnlySequence<byte>.Empty, cancellationToken).IsCompletedSuccessfully, Is.True);
        fd.Dispose();
        writeEnd.Dispose();
        readEnd.Dispose();
    }

    [TestCase(false), TestCase(true), CancelAfter(10_000)]
    public async Task AReaderGoneIsAResetNamingTheFd(bool whileWaiting, CancellationToken cancellationToken)
    {
        var (readEnd, writeEnd) = Pipe();
        using RawFd fd = RawFd.Create(writeEnd);
        var writer = new RawFdWriter(fd, "fifo:out", continueOnReactor: true);
        if (!whileWaiting)
            readEnd.Dispose();
        // 1 MiB cannot fit a 64 KiB pipe: with the reader still there, the write waits until it closes.
        ValueTask write = writer.WriteAsync(new ReadOnlySequence<byte>(new byte[1 << 20]), cancellationToken);
        if (whileWaiting)
        {
            Assert.That(write.IsCompleted, Is.False);
            readEnd.Dispose();
        }
        var e = Assert.ThrowsAsync<FdConnectionResetException>(async () => await write);
        Assert.That(e!.Errno, Is.EqualTo(Errno.EPIPE));
        Assert.That(e.Operation, Is.EqualTo("write"));
        Assert.That(e.Target, Is.EqualTo("fifo:out"));
        fd.Dispose();
        writeEnd.Dispose();
    }

    /// <summary>
    /// With continueOnReactor the code after a write that had to wait runs on the reactor thread (no
    /// thread-pool hand-off, what the copy engine wants); without it, on the thread pool.
    /// </summary>
    [TestCase(false), TestCase(true), CancelAfter(10_000)]
    public async Task AfterAWaitTheCallerContinuesWhereAsked(bool continueOnReactor, CancellationToken cancellationToken)
    {
        var (readEnd, writeEnd) = Pipe();
        using RawFd fd = RawFd.Create(writeEnd);
        var writer = new RawFdWriter(fd, continueOnReactor: continueOnReactor);
        await writer.WriteAsync(new ReadOnlySequence<byte>(new byte[64 * 1024]), cancellationToken); // the pipe is full now
        var waiting = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        Task<bool> onPool = Task.Run(async () =>
        {
            ValueTask write = writer.WriteAsync(new ReadOnlySequence<byte>(new byte[4096]), cancellationToken);
            Assert.That(write.IsCompleted, Is.False, "the write must wait");
            waiting.SetResult();
            await write;
            return Thread.CurrentThread.IsThreadPoolThread;
        }, cancellationToken);

        // Drain only once the write waits: draining earlier can let it complete without waiting.
        await Task.WhenAny(waiting.Task, onPool).WaitAsync(cancellationToken);
        Task<byte[]> drain = ReadToEndAsync(readEnd, cancellationToken);
        Assert.That(await onPool, Is.EqualTo(!continueOnReactor));
        fd.Dispose();
        writeEnd.Dispose();
        Assert.That(await drain, Has.Length.EqualTo(64 * 1024 + 4096));
    }

    private static ReadOnlySequence<byte> Segments(byte[] data, int size)
    {
        var first = new Segment(data.AsMemory(0, Math.Min(size, data.Length)), 0);
        Segment last = first;
        for (int offset = size; offset < data.Length; offset += size)
            last = last.Append(data.AsMemory(offset, Math.Min(size, data.Length - offset)));
        return new ReadOnlySequence<byte>(first, 0, last, last.Memory.Length);
    }

    private sealed class Segment : ReadOnlySequenceSegment<byte>
    {
        public Segment(ReadOnlyMemory<byte> memory, long runningIndex)
        {
            Memory = memory;
            RunningIndex = runningIndex;
        }

        public Segment Append(ReadOnlyMemory<byte> memory)
        {
            var next = new Segment(memory, RunningIndex + Memory.Length);
            Next = next;
            return next;
        }
    }
}
