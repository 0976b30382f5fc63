using System.Net;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.Logging;
using PipeTransport.Endpoints;

namespace PipeTransport.Kestrel;

/// <summary>
/// Serves a <see cref="FifoEndPoint"/>: "accepting" is opening the FIFO pair and waiting for a client
/// at the other ends. A FIFO carries one conversation at a time, so the next accept waits until Kestrel
/// has disposed the previous connection, then opens the same FIFOs again.
/// </summary>
internal sealed class FifoConnectionListener : IConnectionListener
{
    private readonly FifoEndPoint _endPoint;
    private readonly FdConnectionOptions _connectionOptions;
    private readonly bool _dispatch;
    private readonly ILogger _logger;
    private readonly List<string> _createdFifos = [];
    private readonly CancellationTokenSource _unbind = new();
    private readonly HandOffCoordinator? _handOff;
    private Task _previousConnectionDisposed = Task.CompletedTask;

    private FifoConnectionListener(FifoEndPoint endPoint, FdConnectionOptions connectionOptions, bool dispatch, ILogger logger, HandOffCoordinator? handOff)
    {
        _handOff = handOff;
        _dispatch = dispatch;
        _logger = logger;
        _endPoint = endPoint;
        _connectionOptions = connectionOptions;
    }

    public EndPoint EndPoint => _endPoint;

    /// <summary>Creates missing FIFOs (like socat's <c>PIPE:</c>) and refuses paths that are something else.</summary>
    /// <remarks>
    /// With hand-off, the first conversation waits until the predecessor has exited (it finishes the
    /// conversation it has), and FIFOs handed off to a successor stay in place for it.
    /// </remarks>
    public static FifoConnectionListener Bind(FifoEndPoint endPoint, UnixFileMode mode, FileOwnership ownership, FdConnectionOptions connectionOptions, bool dispatch, ILogger logger,
        HandOffCoordinator? handOff = null)
    {
        var listener = new FifoConnectionListener(endPoint, connectionOptions, dispatch, logger, handOff);
        try
        {
            listener.EnsureFifo(endPoint.ReadPath, mode, ownership);
            listener.EnsureFifo(endPoint.WritePath, mode, ownership);
        }
        catch
        {
            listener.RemoveCreatedFifos();
            throw;
        }
        return listener;
    }

    private void EnsureFifo(string path, UnixFileMode mode, FileOwnership ownership)
    {
        if (File.Exists(path) || Directory.Exists(path))
        {
            if (!Fifo.Exists(path))
            {
                throw new IOException($"Cannot serve HTTP over FIFO '{path}': it exists and is not a FIFO.");
            }
            return;
        }
        Fifo.Create(path, mode);
        _createdFifos.Add(path);
        if (ownership.Apply(path) is { } error)
        {
            throw error;
        }
    }

    /// <summary>
    /// Waits for the previous conversation to be disposed, then for the next client: first a writer on
    /// the request FIFO, and only then a reader on the response FIFO. The order matters. Opening the
    /// response FIFO for writing while the previous client still reads it would make us a second writer,
    /// and that client would never see its EOF. A client announces itself by opening the request FIFO,
    /// which the previous one has closed (that close is how it ended its request).
    /// </summary>
    public async ValueTask<ConnectionContext?> AcceptAsync(CancellationToken cancellationToken = default)
    {
        using var cancel = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _unbind.Token);
        try
        {
            await _previousConnectionDisposed.WaitAsync(cancel.Token).ConfigureAwait(false);
            if (_handOff is not null)
            {
                await _handOff.WaitForFifosAsync(cancel.Token).ConfigureAwait(false);
            }
            var connection = await OpenConversationAsync(cancel.Token).ConfigureAwait(false);
            var disposed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            _previousConnectionDisposed = disposed.Task;
            return new PipeConnectionContext(connection, _connectionOptions.MemoryPool, _dispatch, _logger, disposed)
            {
                LocalEndPoint = _endPoint,
                RemoteEndPoint = _endPoint,
            };
        }
        catch (OperationCanceledException) when (_unbind.IsCancellationRequested)
        {
            return null;
        }
    }

    private async Task<FdConnection> OpenConversationAsync(CancellationToken cancellationToken)
    {
        var input = await Fifo.OpenAsync(_endPoint.ReadPath, FileAccess.Read, _connectionOptions, cancellationToken).ConfigureAwait(false);
        SafeFdHandle? output = null;
        try
        {
            output = await Fifo.OpenAsync(_endPoint.WritePath, FileAccess.Write, _connectionOptions, cancellationToken).ConfigureAwait(false);
            return FdConnection.FromFds(input, output, _connectionOptions);
        }
        catch
        {
            input.Dispose();
            output?.Dispose();
            throw;
        }
    }

    public ValueTask UnbindAsync(CancellationToken cancellationToken = default)
    {
        _unbind.Cancel();
        return ValueTask.CompletedTask;
    }

    public async ValueTask DisposeAsync()
    {
        await UnbindAsync().ConfigureAwait(false);
        if (_handOff?.HandedOff != true)
        {
            RemoveCreatedFifos();
        }
    }

    private void RemoveCreatedFifos()
    {
        foreach (var path in _createdFifos)
        {
            File.Delete(path);
        }
        _createdFifos.Clear();
    }
}
