using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Http.Features;

namespace PipeTransport.Kestrel;

/// <summary>
/// One accepted connection as Kestrel sees it: an <see cref="FdConnection"/> (already an
/// <see cref="IDuplexPipe"/>) plus the connection features. The context is its own feature collection
/// and implements the transport's features itself, so a connection costs one object here, not one per
/// feature.
/// </summary>
internal sealed partial class PipeConnectionContext : ConnectionContext,
    IConnectionIdFeature,
    IConnectionTransportFeature,
    IConnectionItemsFeature,
    IMemoryPoolFeature,
    IConnectionLifetimeFeature,
    IConnectionEndPointFeature,
    IPeerCredentialsFeature,
    IDuplexPipe
{
    private readonly FdConnection _connection;
    private readonly TaskCompletionSource? _disposed;
    private readonly long _id;
    private string? _connectionId;
    private IDictionary<object, object?>? _items;
    private IDuplexPipe _transport;
    private PipeReader? _input;
    private PipeWriter? _output;
    private CancellationToken? _connectionClosed;

    public PipeConnectionContext(FdConnection connection, MemoryPool<byte> memoryPool, TaskCompletionSource? disposed = null)
    {
        _connection = connection;
        _disposed = disposed;
        _id = ConnectionIdGenerator.Next();
        _transport = this;
        MemoryPool = memoryPool;
        LocalEndPoint = connection.LocalEndPoint;
        RemoteEndPoint = connection.RemoteEndPoint;
    }

    public override string ConnectionId
    {
        get => _connectionId ??= ConnectionIdGenerator.Format(_id);
        set => _connectionId = value;
    }

    public override IFeatureCollection Features => this;

    public override IDictionary<object, object?> Items
    {
        get => _items ??= new ConnectionItems();
        set => _items = value;
    }

    public override IDuplexPipe Transport
    {
        get => _transport;
        set => _transport = value;
    }

    PipeReader IDuplexPipe.Input => _input ??= new TransportInput(_connection.Input);

    PipeWriter IDuplexPipe.Output => _output ??= new TransportOutput(_connection.Output);

    public MemoryPool<byte> MemoryPool { get; }

    public override EndPoint? LocalEndPoint { get; set; }

    public override EndPoint? RemoteEndPoint { get; set; }

    public override CancellationToken ConnectionClosed
    {
        get => _connectionClosed ?? _connection.Closed;
        set => _connectionClosed = value;
    }

    public PeerCredentials? PeerCredentials => _connection.PeerCredentials;

    public override void Abort(ConnectionAbortedException abortReason) => _connection.Abort(abortReason);

    /// <summary>
    /// Kestrel calls this once its connection middleware is done. Completing Output lets the send loop
    /// write what is left and then half-close (FIN), so a response is never cut short here; the core's
    /// dispose then closes the fds.
    /// </summary>
    public override async ValueTask DisposeAsync()
    {
        try
        {
            ((IDuplexPipe)this).Input.Complete();
            ((IDuplexPipe)this).Output.Complete();
            await _connection.DisposeAsync().ConfigureAwait(false);
        }
        finally
        {
            _disposed?.TrySetResult();
        }
    }
}
