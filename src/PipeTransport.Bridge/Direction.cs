using System.Buffers;
using System.IO.Pipelines;

namespace PipeTransport.Bridge;

/// <summary>
/// One direction of the bridge: bytes from <see cref="Source"/>'s Input to <see cref="Destination"/>'s
/// Output until end of stream, then the destination's write side is half-closed by completing its Output.
/// </summary>
internal sealed class Direction(
    Address sourceAddress, FdConnection source, Address destinationAddress, FdConnection destination,
    BridgeOptions options, TransferStats stats, bool destinationIsWriteOnly, DataDump? dump)
{
    private Func<long> _bytes = static () => 0;

    public Address SourceAddress => sourceAddress;
    public Address DestinationAddress => destinationAddress;
    public FdConnection Source => source;
    public FdConnection Destination => destination;

    /// <summary>Bytes moved so far (read while the engine runs, for -T and the notices).</summary>
    public long Bytes => _bytes();

    /// <summary>The engine this direction will use: auto picks splice when both fds are pipes or sockets, or a regular file to one of them.</summary>
    public Engine ChooseEngine()
    {
        if (options.Engine == Engine.Copy || dump is not null) return Engine.Copy;
        bool spliceable = SpliceCopier.CanSpliceFrom(source.InputFd) && SpliceCopier.CanSplice(destination.OutputFd);
        if (spliceable) return Engine.Splice;
        if (options.Engine == Engine.Splice)
            throw new UsageException($"--engine splice needs pipes, FIFOs or sockets (or a regular file to read); '{sourceAddress} -> {destinationAddress}' has another kind of fd (use --engine copy)");
        return Engine.Copy;
    }

    public async Task RunAsync(CancellationToken cancellationToken)
    {
        try
        {
            if (ChooseEngine() == Engine.Splice) await SpliceAsync(cancellationToken).ConfigureAwait(false);
            else await CopyAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (BridgeFailure failure) when (destinationAddress is ExecAddress && ReferenceEquals(failure.Address, destinationAddress)
            && failure.InnerException is PipeTransportException { Errno: Mono.Unix.Native.Errno.EPIPE } or FdConnectionResetException)
        {
            // The program stopped reading its stdin (or exited): the rest is dropped, and its exit
            // status says whether that was a failure.
        }
        try
        {
            // Flushes what is left, then shutdown(SHUT_WR) on a socket or close of a pipe's write end.
            await destination.Output.CompleteAsync().ConfigureAwait(false);
            // A connection used only for writing is closed now, so that a FIFO's reader sees EOF
            // even when the FIFO was opened as one duplex fd.
            if (destinationIsWriteOnly)
                await destination.DisposeAsync().ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            throw BridgeFailure.From(destinationAddress, e);
        }
    }

    private async Task SpliceAsync(CancellationToken cancellationToken)
    {
        // What follows the copy (the half-close, disposal) is short and never blocks: it may run on the reactor.
        using var copier = new SpliceCopier(source.InputFd, destination.OutputFd, options.SpliceChunkSize,
            sourceAddress.Text, destinationAddress.Text) { CompletesOnReactor = true };
        _bytes = () => copier.BytesCopied;
        using IDisposable tracking = stats.Track(_bytes);
        try
        {
            await copier.CopyToEndAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (PipeTransportException e)
        {
            throw BridgeFailure.From(e.Target == destinationAddress.Text ? destinationAddress : sourceAddress, e);
        }
    }

    private Task CopyAsync(CancellationToken cancellationToken) =>
        destination.OutputFd.IsPollable
            ? CopyToOutputFdAsync(cancellationToken)
            : CopyThroughOutputAsync(cancellationToken);

    /// <summary>
    /// The copy engine: bytes arrive in the source connection's Input pipe (the receive loop reads
    /// the fd into its blocks) and are written from those same blocks to the destination's fd with
    /// write/writev, waiting on the reactor when it is full. One user-space copy per byte, as in cat;
    /// the destination's Output pipe is left empty and only completed at the end (the half-close).
    /// </summary>
    private async Task CopyToOutputFdAsync(CancellationToken cancellationToken)
    {
        // The loop below never blocks, so a write that waited completes on the reactor thread and the
        // loop goes on there (with the inline ApplicationScheduler, the whole copy runs on one thread).
        var writer = new RawFdWriter(destination.OutputFd, destinationAddress.Text, continueOnReactor: true);
        _bytes = () => writer.BytesWritten;
        using IDisposable tracking = stats.Track(_bytes);
        PipeReader input = source.Input;
        while (true)
        {
            ReadResult result;
            try
            {
                result = await input.ReadAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                throw BridgeFailure.From(sourceAddress, e);
            }
            ReadOnlySequence<byte> buffer = result.Buffer;
            if (!buffer.IsEmpty)
            {
                dump?.Write(buffer);
                try
                {
                    await writer.WriteAsync(buffer, cancellationToken).ConfigureAwait(false);
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    throw BridgeFailure.From(destinationAddress, e);
                }
            }
            input.AdvanceTo(buffer.End);
            if (result.IsCompleted || result.IsCanceled)
                break;
        }
        await input.CompleteAsync().ConfigureAwait(false);
    }

    /// <summary>The copy engine for a destination epoll refuses (a regular file): through its Output pipe, whose send loop may block.</summary>
    private async Task CopyThroughOutputAsync(CancellationToken cancellationToken)
    {
        var counter = new ByteCounter();
        _bytes = () => counter.Value;
        using IDisposable tracking = stats.Track(_bytes);
        PipeReader input = source.Input;
        PipeWriter output = destination.Output;
        while (true)
        {
            ReadResult result;
            try
            {
                result = await input.ReadAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                throw BridgeFailure.From(sourceAddress, e);
            }
            ReadOnlySequence<byte> buffer = result.Buffer;
            long length = buffer.Length;
            if (length > 0)
            {
                dump?.Write(buffer);
                foreach (ReadOnlyMemory<byte> segment in buffer)
                    output.Write(segment.Span);
            }
            input.AdvanceTo(buffer.End);
            if (length > 0)
            {
                FlushResult flush;
                try
                {
                    flush = await output.FlushAsync(cancellationToken).ConfigureAwait(false);
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    throw BridgeFailure.From(destinationAddress, e);
                }
                counter.Add(length);
                // The connection stopped taking bytes: its send loop met EPIPE/ECONNRESET.
                if (flush.IsCompleted)
                    throw new BridgeFailure(destinationAddress, $"write: {BridgeFailure.Describe((int)Mono.Unix.Native.Errno.EPIPE)}");
            }
            if (result.IsCompleted || result.IsCanceled)
                break;
        }
        await input.CompleteAsync().ConfigureAwait(false);
    }
}
