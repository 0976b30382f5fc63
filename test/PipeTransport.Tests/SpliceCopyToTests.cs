using System.IO.Pipelines;
using System.Security.Cryptography;
using NUnit.Framework;

namespace PipeTransport.Tests;

/// <summary>
/// <c>Input.CopyToAsync(Output)</c> between connections: the kernel copies (splice) when both fds allow it
/// and nothing is buffered, with the pipes' semantics (end of stream, half-close, cancellation, errors).
/// Each test copies from pair 1's B.Input (fed by pair 1's A) to pair 2's A.Output (read by pair 2's B).
/// </summary>
public sealed class SpliceCopyToTests
{
    private const int Size = 4 << 20;

    [Test, CancelAfter(60_000)]
    public async Task EveryByteArrivesBetweenEveryPairOfFdKinds(
        [ValueSource(typeof(FdKinds), nameof(FdKinds.All))] string from,
        [ValueSource(typeof(FdKinds), nameof(FdKinds.All))] string to,
        CancellationToken ct)
    {
        await using ConnectedPair source = await FdKinds.ConnectAsync(from, null, ct);
        await using ConnectedPair destination = await FdKinds.ConnectAsync(to, null, ct);
        byte[] data = FdTestHelpers.RandomBytes(Size, seed: 14);

        Task<byte[]> received = FdTestHelpers.ReadToEndAsync(destination.B.Input, ct);
        Task write = WriteAndCompleteAsync(source.A.Output, data, ct);
        await source.B.Input.CopyToAsync(destination.A.Output, ct);
        await destination.A.Output.CompleteAsync();
        await write;

        Assert.That(SHA256.HashData(await received), Is.EqualTo(SHA256.HashData(data)), $"{from} → {to}");
        Assert.That(source.B.SplicedBytes, Is.EqualTo(Size), "the kernel moved every byte");
    }

    [Test, CancelAfter(30_000)]
    public async Task AfterTheCopyInputIsAtItsEndAndOutputCompletesWithAHalfClose(CancellationToken ct)
    {
        await using ConnectedPair source = await FdKinds.ConnectAsync(FdKinds.Tcp, null, ct);
        await using ConnectedPair destination = await FdKinds.ConnectAsync(FdKinds.Unix, null, ct);
        byte[] data = FdTestHelpers.RandomBytes(100_000, seed: 1);

        Task<byte[]> received = FdTestHelpers.ReadToEndAsync(destination.B.Input, ct);
        await WriteAndCompleteAsync(source.A.Output, data, ct);
        await source.B.Input.CopyToAsync(destination.A.Output, ct);

        ReadResult after = await source.B.Input.ReadAsync(ct);
        Assert.That(after.IsCompleted && after.Buffer.IsEmpty, Is.True, "Input read to its EOF");
        source.B.Input.AdvanceTo(after.Buffer.End);
        Assert.That(received.IsCompleted, Is.False, "the copy leaves the destination open");

        // The destination still takes writes of its own, then half-closes; its reverse direction stays open.
        await destination.A.Output.WriteAsync("tail"u8.ToArray(), ct);
        await destination.A.Output.CompleteAsync();
        Assert.That(await received, Is.EqualTo(data.Concat("tail"u8.ToArray()).ToArray()));
        await destination.A.WritesClosed.WaitAsync(ct);
        await destination.B.Output.WriteAsync("back"u8.ToArray(), ct);
        Assert.That(await FdTestHelpers.ReadExactlyAsync(destination.A.Input, 4, ct), Is.EqualTo("back"u8.ToArray()));
    }

    /// <summary>
    /// Cancelled while the destination is full: what the copy took from the fd and could not deliver
    /// (between two sockets it sits in the copier's own pipe) comes first in Input, so nothing is lost.
    /// </summary>
    [Test, CancelAfter(60_000)]
    public async Task CancellingLosesNoByte([Values(FdKinds.Tcp, FdKinds.AnonymousPipes)] string kind, CancellationToken ct)
    {
        await using ConnectedPair source = await FdKinds.ConnectAsync(kind, null, ct);
        await using ConnectedPair destination = await FdKinds.ConnectAsync(kind, null, ct);
        byte[] data = FdTestHelpers.RandomBytes(Size, seed: 2);
        Task write = WriteAndCompleteAsync(source.A.Output, data, ct);

        // Nobody reads the destination: the copy fills it and waits.
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        Task copy = source.B.Input.CopyToAsync(destination.A.Output, stop.Token);
        while (!destination.A.SendBlocked)
        {
            await Task.Delay(5, ct); // until the copy waits for the full destination
        }

        stop.Cancel();
        Assert.That(async () => await copy, Throws.InstanceOf<OperationCanceledException>());

        // Everything the destination got, then everything Input still has, is what was written.
        Task<byte[]> delivered = FdTestHelpers.ReadToEndAsync(destination.B.Input, ct);
        await destination.A.Output.CompleteAsync();
        byte[] rest = await FdTestHelpers.ReadToEndAsync(source.B.Input, ct);
        await write;
        byte[] first = await delivered;
        Assert.That(first.Length, Is.GreaterThan(0), "the copy had moved bytes before it was cancelled");
        Assert.That(first.Length + rest.Length, Is.EqualTo(data.Length));
        Assert.That(SHA256.HashData(first.Concat(rest).ToArray()), Is.EqualTo(SHA256.HashData(data)));
    }

    [Test, CancelAfter(30_000)]
    public async Task AWriteErrorEndsTheDestinationAndIsThrownOnce(CancellationToken ct)
    {
        await using ConnectedPair source = await FdKinds.ConnectAsync(FdKinds.Unix, null, ct);
        await using ConnectedPair destination = await FdKinds.ConnectAsync(FdKinds.AnonymousPipes, null, ct);
        await destination.B.DisposeAsync(); // the destination pipe's reader is gone: writes fail with EPIPE

        byte[] data = FdTestHelpers.RandomBytes(1 << 20, seed: 3);
        Task write = WriteAndCompleteAsync(source.A.Output, data, ct);
        // EPIPE: the peer's end is gone, reported as for any write (FdConnectionResetException).
        var error = Assert.CatchAsync<FdConnectionResetException>(async () => await source.B.Input.CopyToAsync(destination.A.Output, ct));
        Assert.That(error!.Message, Does.Contain("EPIPE"));
        Assert.That(async () => await destination.A.WritesClosed, Throws.InstanceOf<FdConnectionResetException>(), "the destination's send direction ended with the error");
        Assert.That(async () => await destination.A.DisposeAsync(), Throws.Nothing, "reported once, by the copy");

        // Input goes on: the rest of the stream is still readable (a failed splice takes nothing from its source).
        byte[] rest = await FdTestHelpers.ReadToEndAsync(source.B.Input, ct);
        await write;
        Assert.That(rest, Is.EqualTo(data[^rest.Length..]), "what the copy did not take is the stream's tail");
    }

    [Test, CancelAfter(30_000)]
    public async Task BytesAlreadyInInputGoThroughThePipesAndNothingIsLost(CancellationToken ct)
    {
        await using ConnectedPair source = await FdKinds.ConnectAsync(FdKinds.FifoPair, null, ct);
        await using ConnectedPair destination = await FdKinds.ConnectAsync(FdKinds.FifoPair, null, ct);
        byte[] data = FdTestHelpers.RandomBytes(Size, seed: 4);
        Task write = WriteAndCompleteAsync(source.A.Output, data, ct);

        // The application reads the first bytes itself, then copies the rest.
        byte[] head = await FdTestHelpers.ReadExactlyAsync(source.B.Input, 10, ct);
        Task<byte[]> received = FdTestHelpers.ReadToEndAsync(destination.B.Input, ct);
        await source.B.Input.CopyToAsync(destination.A.Output, ct);
        await destination.A.Output.CompleteAsync();
        await write;

        Assert.That(SHA256.HashData(head.Concat(await received).ToArray()), Is.EqualTo(SHA256.HashData(data)));
        Assert.That(source.B.SplicedBytes, Is.Zero, "Input held bytes: the copy went through the pipes");
    }

    [Test, CancelAfter(30_000)]
    public async Task UseSpliceFalseCopiesThroughThePipes(CancellationToken ct)
    {
        var options = new FdConnectionOptions { UseSplice = false };
        await using ConnectedPair source = await FdKinds.ConnectAsync(FdKinds.AnonymousPipes, options, ct);
        await using ConnectedPair destination = await FdKinds.ConnectAsync(FdKinds.AnonymousPipes, options, ct);
        byte[] data = FdTestHelpers.RandomBytes(Size, seed: 5);

        Task<byte[]> received = FdTestHelpers.ReadToEndAsync(destination.B.Input, ct);
        Task write = WriteAndCompleteAsync(source.A.Output, data, ct);
        await source.B.Input.CopyToAsync(destination.A.Output, ct);
        await destination.A.Output.CompleteAsync();
        await write;

        Assert.That(SHA256.HashData(await received), Is.EqualTo(SHA256.HashData(data)));
        Assert.That(source.B.SplicedBytes, Is.Zero);
    }

    [Test, CancelAfter(30_000)]
    public async Task DisposingEitherConnectionEndsTheCopyWithoutAHang([Values] bool disposeSource, CancellationToken ct)
    {
        await using ConnectedPair source = await FdKinds.ConnectAsync(FdKinds.Tcp, null, ct);
        await using ConnectedPair destination = await FdKinds.ConnectAsync(FdKinds.Tcp, null, ct);
        await source.A.Output.WriteAsync(new byte[1000], ct); // the writer stays open: the copy waits for more

        Task copy = source.B.Input.CopyToAsync(destination.A.Output, ct);
        Assert.That(await FdTestHelpers.ReadExactlyAsync(destination.B.Input, 1000, ct), Has.Length.EqualTo(1000));
        await (disposeSource ? source.B : destination.A).DisposeAsync();
        await copy; // ends normally, as the pipes' copy does when its source or destination is disposed
    }

    private static async Task WriteAndCompleteAsync(PipeWriter output, byte[] data, CancellationToken ct)
    {
        for (int offset = 0; offset < data.Length; offset += 65536)
        {
            await output.WriteAsync(data.AsMemory(offset, Math.Min(65536, data.Length - offset)), ct);
        }

        await output.CompleteAsync();
    }
}
