using System.Net;
using Microsoft.AspNetCore.Connections;
using Microsoft.Win32.SafeHandles;
using Mono.Unix;

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
    private readonly List<string> _createdFifos = [];
    private readonly CancellationTokenSource _unbind = new();
    private Task _previousConnectionDisposed = Task.CompletedTask;

    private FifoConnectionListener(FifoEndPoint endPoint, FdConnectionOptions connectionOptions, bool dispatch)
    {
        _dispatch = dispatch;
        _endPoint = endPoint;
        _connectionOptions = connectionOptions;
    }

    public EndPoint EndPoint => _endPoint;

    /// <summary>Creates missing FIFOs (like socat's <c>PIPE:</c>) and refuses paths that are something else.</summary>
    public static FifoConnectionListener Bind(FifoEndPoint endPoint, UnixFileMode mode, FdConnectionOptions connectionOptions, bool dispatch)
    {
        var listener = new FifoConnectionListener(endPoint, connectionOptions, dispatch);
        try
        {
            listener.EnsureFifo(endPoint.ReadPath, mode);
            listener.EnsureFifo(endPoint.WritePath, mode);
        }
        catch
        {
            listener.RemoveCreatedFifos();
            throw;
        }
        return listener;
    }

    private void EnsureFifo(string path, UnixFileMode mode)
    {
        if (File.Exists(path) || Directory.Exists(path))
        {
            var type = UnixFileSystemInfo.GetFileSystemEntry(path).FileType;
            if (type != FileTypes.Fifo)
            {
                throw new IOException($"Cannot serve HTTP over FIFO '{path}': it exists and is a {type}, not a FIFO.");
            }
            return;
        }
        Fifo.Create(path, mode);
        _createdFifos.Add(path);
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
            var input = await FifoOpen.WaitForPeerAsync(_endPoint.ReadPath, forWriting: false, cancel.Token).ConfigureAwait(false);
            SafeFileHandle output;
            try
            {
                output = await FifoOpen.WaitForPeerAsync(_endPoint.WritePath, forWriting: true, cancel.Token).ConfigureAwait(false);
            }
            catch
            {
                input.Dispose();
                throw;
            }
            var connection = FdConnection.FromFds(input, output, _connectionOptions);
            var disposed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            _previousConnectionDisposed = disposed.Task;
            return new PipeConnectionContext(connection, _connectionOptions.MemoryPool, _dispatch, disposed)
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

    public ValueTask UnbindAsync(CancellationToken cancellationToken = default)
    {
        _unbind.Cancel();
        return ValueTask.CompletedTask;
    }

    public async ValueTask DisposeAsync()
    {
        await UnbindAsync().ConfigureAwait(false);
        RemoveCreatedFifos();
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
