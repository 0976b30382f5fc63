using Microsoft.Win32.SafeHandles;
using Mono.Unix.Native;
using NUnit.Framework;

using static PipeTransport.Bridge.Tests.AnonymousPipes;

namespace PipeTransport.Bridge.Tests;

/// <summary>The library's <see cref="SpliceCopier"/> on its own, over anonymous pipes and socket pairs.</summary>
public sealed class SpliceCopierTests
{
    /// <summary>
    /// The source ends (all written, writer closed) while the destination is full: splice then says
    /// EAGAIN although the source is at EOF, and the copier must wait for the destination, not the source.
    /// </summary>
    [Test, CancelAfter(20_000)]
    public async Task PipeToPipeFinishesWhenTheSourceEndsBehindAFullDestination(CancellationToken cancellationToken)
    {
        var (sourceRead, sourceWrite) = Pipe();
        var (destinationRead, destinationWrite) = Pipe();
        const int size = 512 * 1024;
        using RawFd source = RawFd.Create(sourceRead), destination = RawFd.Create(destinationWrite);
        Assert.That(PipeCapacity.TrySet(source, 1 << 20), Is.GreaterThanOrEqualTo(size));
        byte[] data = new byte[size];
        new Random(11).NextBytes(data);
        using (var writer = new FileStream(new SafeFileHandle(sourceWrite.Fd, ownsHandle: false), FileAccess.Write, 0))
            writer.Write(data);
        sourceWrite.Dispose(); // EOF is waiting behind the data

        using var copier = new SpliceCopier(source, destination, 64 * 1024);
        Assert.That(copier.UsesIntermediatePipe, Is.False);
        // The copier waits for the destination, so its loop resumes on a reactor thread; the caller's
        // code after the await must still run on the thread pool, never on the reactor.
        bool callerOnPool = false;
        Task<long> copy = Task.Run(async () =>
        {
            long copied = await copier.CopyToEndAsync(cancellationToken);
            callerOnPool = Thread.CurrentThread.IsThreadPoolThread;
            return copied;
        }, cancellationToken);

        // The destination (64 KiB) fills long before the source is drained; read it only now.
        // When the copy ends, closing the write end (the RawFd keeps the fd open until it is disposed) gives the reader EOF.
        _ = copy.ContinueWith(_ => { destination.Dispose(); destinationWrite.Dispose(); },
            CancellationToken.None, TaskContinuationOptions.None, TaskScheduler.Default);
        byte[] received = await ReadToEndAsync(destinationRead, cancellationToken);
        Assert.That(await copy, Is.EqualTo(size));
        Assert.That(received, Is.EqualTo(data));
        Assert.That(callerOnPool, Is.True, "CopyToEndAsync returned on a reactor thread");
        sourceRead.Dispose();
    }

    /// <summary>
    /// The copy loop runs on the reactor thread after a wait; a source that never runs dry must not
    /// keep it there: another fd on the same (only) reactor still gets its wake-ups.
    /// </summary>
    [Test, CancelAfter(20_000)]
    public async Task ABusyCopyLeavesTheReactorToOtherFds(CancellationToken cancellationToken)
    {
        using var reactor = new ReactorGroup(1);
        var options = new FdConnectionOptions { ReactorGroup = reactor };
        var (producer, source) = FdConnection.CreatePair(options);
        var (sink, drain) = FdConnection.CreatePair(options);
        var (ping, pong) = FdConnection.CreatePair(options);
        await using (producer) await using (source) await using (sink) await using (drain) await using (ping) await using (pong)
        {
            using var copier = new SpliceCopier(source.InputFd, sink.OutputFd, 64 * 1024);
            using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            Task<long> copy = copier.CopyToEndAsync(stop.Token);
            byte[] block = new byte[256 * 1024];
            Task produce = Task.Run(async () =>
            {
                while (!stop.IsCancellationRequested)
                    await producer.Output.WriteAsync(block, stop.Token);
            }, stop.Token);
            var streaming = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            Task consume = Task.Run(async () =>
            {
                while (!stop.IsCancellationRequested)
                {
                    var result = await drain.Input.ReadAsync(stop.Token);
                    drain.Input.AdvanceTo(result.Buffer.End);
                    streaming.TrySetResult();
                }
            }, stop.Token);

            // Bytes have come through the copier (the producer and the consumer run on the pool, so
            // they may start after the round trips below could have finished).
            await streaming.Task.WaitAsync(cancellationToken);

            // While bytes stream through the copier, a round trip between two other fds of the reactor completes.
            for (int i = 0; i < 20; i++)
            {
                await ping.Output.WriteAsync(new byte[] { (byte)i }, cancellationToken);
                var reply = await pong.Input.ReadAsync(cancellationToken);
                Assert.That(reply.Buffer.FirstSpan[0], Is.EqualTo((byte)i));
                pong.Input.AdvanceTo(reply.Buffer.End);
            }
            Assert.That(copier.BytesCopied, Is.GreaterThan(0));
            Assert.That(copy.IsCompleted, Is.False);
            await stop.CancelAsync();
            await Task.WhenAll(copy, produce, consume).ContinueWith(_ => { }, CancellationToken.None, TaskContinuationOptions.None, TaskScheduler.Default);

            // What the producer flushed and nobody will read is dropped by choice: without the abort, the
            // write that meets the closed source (EPIPE) is reported by its disposal, as it must be.
            producer.Abort();
        }
    }

    [Test, CancelAfter(20_000)]
    public async Task SocketToSocketGoesThroughAnIntermediatePipe(CancellationToken cancellationToken)
    {
        var (left, leftPeer) = FdConnection.CreatePair();
        var (right, rightPeer) = FdConnection.CreatePair();
        await using (left) await using (leftPeer) await using (right) await using (rightPeer)
        {
            using var copier = new SpliceCopier(leftPeer.InputFd, right.OutputFd, 128 * 1024, "left", "right");
            Assert.That(copier.UsesIntermediatePipe, Is.True);
            Task<long> copy = copier.CopyToEndAsync(cancellationToken);

            const long size = 8 * TestData.MiB;
            Task<byte[]> sent = Task.Run(async () =>
            {
                byte[] hash = await TestData.WriteAsync(left.Output.AsStream(leaveOpen: true), size, 12, cancellationToken, close: false);
                await left.Output.CompleteAsync(); // FIN: the copier's source reaches EOF
                return hash;
            }, cancellationToken);
            Task<(long, byte[])> received = Task.Run(async () =>
            {
                long copied = await copy;
                await right.Output.CompleteAsync(); // the caller half-closes the destination
                return (copied, Array.Empty<byte>());
            }, cancellationToken);
            var (length, hash) = await TestData.ReadAsync(rightPeer.Input.AsStream(leaveOpen: true), cancellationToken, close: false);

            Assert.That(length, Is.EqualTo(size));
            Assert.That(hash, Is.EqualTo(await sent));
            Assert.That((await received).Item1, Is.EqualTo(size));
        }
    }

    [Test, CancelAfter(10_000)]
    public void ARegularFileIsASourceButNotADestination(CancellationToken cancellationToken)
    {
        string path = Path.GetTempFileName();
        try
        {
            using SafeFileHandle file = File.OpenHandle(path, FileMode.Open, FileAccess.ReadWrite);
            var (pipeRead, pipeWrite) = Pipe();
            using RawFd fileFd = RawFd.Create(file), pipeFd = RawFd.Create(pipeWrite), pipeReadFd = RawFd.Create(pipeRead);
            Assert.That(SpliceCopier.CanSplice(fileFd), Is.False);
            Assert.That(SpliceCopier.CanSpliceFrom(fileFd), Is.True);
            Assert.That(SpliceCopier.CanSplice(pipeFd), Is.True);
            Assert.Throws<ArgumentException>(() => new SpliceCopier(pipeReadFd, fileFd).Dispose());
            new SpliceCopier(fileFd, pipeFd).Dispose();
            pipeRead.Dispose();
            pipeWrite.Dispose();
        }
        finally
        {
            File.Delete(path);
        }
    }

    /// <summary>
    /// A regular file goes out with sendfile from its current position (bytes before it were read by
    /// someone else) to its end, waiting whenever the destination is full, to a socket and to a pipe.
    /// </summary>
    [TestCase(true), TestCase(false), CancelAfter(30_000)]
    public async Task ARegularFileIsSentFromItsPositionToItsEnd(bool toSocket, CancellationToken cancellationToken)
    {
        const int size = 8 << 20, skipped = 12345;
        byte[] data = new byte[size];
        new Random(7).NextBytes(data);
        string path = Path.GetTempFileName();
        try
        {
            await File.WriteAllBytesAsync(path, data, cancellationToken);
            using SafeFileHandle file = File.OpenHandle(path, FileMode.Open, FileAccess.Read);
            // FileStream reads at its own offsets (pread); the fd's file position moves only with lseek/read.
            Assert.That(Syscall.lseek((int)file.DangerousGetHandle(), skipped, SeekFlags.SEEK_SET), Is.EqualTo(skipped));

            SafeFdHandle readEnd, writeEnd;
            if (toSocket)
            {
                Assert.That(Syscall.socketpair(UnixAddressFamily.AF_UNIX, UnixSocketType.SOCK_STREAM, 0, out int fd0, out int fd1), Is.Zero);
                (readEnd, writeEnd) = (new SafeFdHandle(fd0), new SafeFdHandle(fd1));
            }
            else
            {
                (readEnd, writeEnd) = Pipe();
            }

            using RawFd source = RawFd.Create(file), destination = RawFd.Create(writeEnd);
            using var copier = new SpliceCopier(source, destination, 256 * 1024);
            Assert.That(copier.UsesIntermediatePipe, Is.False);
            Task<long> copy = Task.Run(() => copier.CopyToEndAsync(cancellationToken), cancellationToken);
            _ = copy.ContinueWith(_ => { destination.Dispose(); writeEnd.Dispose(); },
                CancellationToken.None, TaskContinuationOptions.None, TaskScheduler.Default);
            byte[] received = await ReadToEndAsync(readEnd, cancellationToken);

            Assert.That(await copy, Is.EqualTo(size - skipped));
            Assert.That(copier.BytesCopied, Is.EqualTo(size - skipped));
            Assert.That(received, Is.EqualTo(data.AsSpan(skipped).ToArray()));
            readEnd.Dispose();
        }
        finally
        {
            File.Delete(path);
        }
    }

    /// <summary>The destination's reader leaves: the copy fails with EPIPE from sendfile, naming the destination.</summary>
    [Test, CancelAfter(30_000)]
    public async Task ARegularFileToAPipeWithoutReaderFailsWithEpipe(CancellationToken cancellationToken)
    {
        string path = Path.GetTempFileName();
        try
        {
            await File.WriteAllBytesAsync(path, new byte[1 << 20], cancellationToken);
            using SafeFileHandle file = File.OpenHandle(path, FileMode.Open, FileAccess.Read);
            var (readEnd, writeEnd) = Pipe();
            readEnd.Dispose();
            using RawFd source = RawFd.Create(file), destination = RawFd.Create(writeEnd);
            using var copier = new SpliceCopier(source, destination, sourceName: "file:x", destinationName: "pipe:y");
            var error = Assert.CatchAsync<PipeTransportException>(() => copier.CopyToEndAsync(cancellationToken));
            Assert.That(error!.Errno, Is.EqualTo(Errno.EPIPE));
            Assert.That(error.Message, Does.Contain("pipe:y").And.Contain("sendfile"));
            writeEnd.Dispose();
        }
        finally
        {
            File.Delete(path);
        }
    }
}
