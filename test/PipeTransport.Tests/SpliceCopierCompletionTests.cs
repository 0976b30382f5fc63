using Microsoft.Win32.SafeHandles;
using NUnit.Framework;
using PipeTransport.Interop;
using PipeTransport.Reactor;

namespace PipeTransport.Tests;

/// <summary>Where a <see cref="SpliceCopier"/>'s copy completes once it has waited on the reactor.</summary>
public sealed class SpliceCopierCompletionTests
{
    /// <summary>
    /// By default the caller's code after the copy runs on the thread pool, never on the reactor thread
    /// that finished the copy; <see cref="SpliceCopier.CompletesOnReactor"/> (pipebridge's setting) lets it
    /// stay there. The copy is made to wait: the destination is full before anyone reads it.
    /// </summary>
    [TestCase(false), TestCase(true), CancelAfter(20_000)]
    public async Task ACopyThatWaitedCompletesOnThePoolUnlessItMayStayOnTheReactor(bool completesOnReactor, CancellationToken ct)
    {
        var (sourceRead, sourceWrite) = FdTestHelpers.Pipe();
        var (destinationRead, destinationWrite) = FdTestHelpers.Pipe();
        const int size = 256 * 1024;
        using RawFd source = RawFd.Create(sourceRead), destination = RawFd.Create(destinationWrite);
        Assert.That(PipeCapacity.TrySet(source, 1 << 20), Is.GreaterThanOrEqualTo(size));
        int destinationCapacity = PipeCapacity.TrySet(destination, 64 * 1024);
        Assert.That(destinationCapacity, Is.LessThan(size));
        byte[] data = new byte[size];
        new Random(5).NextBytes(data);
        using (var writer = new FileStream(new SafeFileHandle(sourceWrite.Fd, ownsHandle: false), FileAccess.Write, 0))
        {
            writer.Write(data);
        }

        sourceWrite.Dispose(); // EOF waits behind the data

        using var copier = new SpliceCopier(source, destination, 64 * 1024) { CompletesOnReactor = completesOnReactor };
        bool? continuedOnReactor = null;
        Task<long> copy = Task.Run(async () =>
        {
            long copied = await copier.CopyToEndAsync(ct);
            continuedOnReactor = EpollReactor.IsDispatching;
            return copied;
        }, ct);

        // Full destination, source not drained: the copy now waits for writability on the reactor.
        while (Sys.BytesAvailable(LinuxSyscalls.Instance, destinationRead.Fd) < destinationCapacity)
        {
            Assert.That(copy.IsCompleted, Is.False, "the copy cannot end before the destination is read");
            await Task.Delay(1, ct);
        }

        _ = copy.ContinueWith(_ => { destination.Dispose(); destinationWrite.Dispose(); },
            CancellationToken.None, TaskContinuationOptions.None, TaskScheduler.Default);
        Sys.SetNonBlocking(destinationRead.Fd, false); // read with a blocking FileStream
        using var reader = new FileStream(new SafeFileHandle(destinationRead.Fd, ownsHandle: false), FileAccess.Read, 0);
        var received = new MemoryStream();
        await Task.Run(() => reader.CopyTo(received), ct);

        Assert.That(await copy, Is.EqualTo(size));
        Assert.That(received.ToArray(), Is.EqualTo(data));
        Assert.That(continuedOnReactor, Is.EqualTo(completesOnReactor));
        sourceRead.Dispose();
        destinationRead.Dispose();
    }
}
