using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Logging;
using PipeTransport.Connection;

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
    IDuplexPipe,
    IConnectionObserver
{
    private const string SentAll = "The PipeTransport send loop completed gracefully.";

    /// <summary>How long a lingering close reads on after its FIN, at most, for the client to close.</summary>
    private static readonly TimeSpan LingerTime = TimeSpan.FromSeconds(2);

    private readonly FdConnection _connection;
    private readonly ILogger _logger;
    private readonly TaskCompletionSource? _disposed;
    private readonly HandOffCoordinator? _lingerOnClose;
    private readonly long _id;
    private readonly bool _dispatch;
    private string? _connectionId;
    private IDictionary<object, object?>? _items;
    private IDuplexPipe _transport;
    private PipeReader? _input;
    private PipeWriter? _output;
    private CancellationToken? _connectionClosedOverride;

    /// <param name="connection">The accepted connection; its pipes complete the application side inline.</param>
    /// <param name="memoryPool">The pool the connection's pipes are built from (<see cref="FdConnectionOptions.MemoryPool"/>), as Kestrel's memory pool feature.</param>
    /// <param name="dispatch">
    /// Hop to the thread pool before Kestrel continues after a read or flush that waited (false with
    /// <see cref="PipeTransportOptions.UnsafePreferInlineScheduling"/>).
    /// </param>
    /// <param name="logger">Where the connection's pauses, FINs, resets and errors go (<see cref="PipeTransportLog"/>).</param>
    /// <param name="disposed">Completed when Kestrel has disposed the connection (FIFO listener).</param>
    /// <param name="lingerOnClose">The server's hand-off: once it handed off, the connection lingers on close.</param>
    public PipeConnectionContext(FdConnection connection, MemoryPool<byte> memoryPool, bool dispatch, ILogger logger, TaskCompletionSource? disposed = null,
        HandOffCoordinator? lingerOnClose = null)
    {
        _lingerOnClose = lingerOnClose;
        _connection = connection;
        _logger = logger;
        connection.Observer = this;
        _dispatch = dispatch;
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

    PipeReader IDuplexPipe.Input => _input ??= new TransportInput(_connection.Input, this, _dispatch);

    PipeWriter IDuplexPipe.Output => _output ??= new TransportOutput(_connection.Output, _dispatch);

    public MemoryPool<byte> MemoryPool { get; }

    public override EndPoint? LocalEndPoint { get; set; }

    public override EndPoint? RemoteEndPoint { get; set; }

    /// <summary>
    /// Fires when the connection is over: both directions ended, an abort, or a reset from the peer.
    /// Not when the peer merely half-closes (sends FIN after its request): Kestrel takes this token as
    /// "the client is gone" and would abort the response, which is what half-close must not do.
    /// This is the core's <see cref="FdConnection.Closed"/> itself (its callbacks run on the thread pool),
    /// not a second token source linked to it: one token source and one registration less per connection.
    /// </summary>
    public override CancellationToken ConnectionClosed
    {
        get => _connectionClosedOverride ?? _connection.Closed;
        set => _connectionClosedOverride = value;
    }

    public PeerCredentials? PeerCredentials => _connection.PeerCredentials;

    public override void Abort(ConnectionAbortedException abortReason) => _connection.Abort(abortReason);

    void IConnectionObserver.InputPaused() => PipeTransportLog.ConnectionPause(_logger, this);

    void IConnectionObserver.InputResumed() => PipeTransportLog.ConnectionResume(_logger, this);

    void IConnectionObserver.ReadFin() => PipeTransportLog.ConnectionReadFin(_logger, this);

    void IConnectionObserver.Reset(Exception error) => PipeTransportLog.ConnectionReset(_logger, this);

    void IConnectionObserver.Error(Exception error) => PipeTransportLog.ConnectionError(_logger, this, error);

    void IConnectionObserver.SendingFin(Exception? reason) => PipeTransportLog.ConnectionWriteFin(_logger, this, reason?.Message ?? SentAll);

    /// <summary>
    /// The peer reset the connection (seen on Input). Nothing more can be sent either, so the
    /// connection is torn down now (which fires <see cref="ConnectionClosed"/>), before Kestrel tries to
    /// drain the request body or write a response to a dead peer.
    /// </summary>
    /// <remarks>
    /// <see cref="ConnectionClosed"/>'s callbacks run here, before the read's exception reaches Kestrel:
    /// Kestrel marks the request aborted in them, and a request not marked yet would have its body drained
    /// through a reader that just failed (Kestrel logs an error for that).
    /// </remarks>
    internal void OnReset(Exception reason)
    {
        _connection.Abort(reason);
        _connection.RunClosedCallbacksNow();
    }

    /// <summary>True once the server was handed off: closing reads on after the FIN (see <see cref="DisposeAsync"/>).</summary>
    internal bool LingersOnClose => _lingerOnClose?.HandedOff == true;

    /// <summary>
    /// Kestrel calls this once its connection middleware is done. Completing Output lets the send loop
    /// write what is left and then half-close (FIN), so a response is never cut short here; the core's
    /// dispose then closes the fds. A write that failed after Kestrel's last flush is not thrown into Kestrel.
    /// </summary>
    /// <remarks>
    /// After a hand-off Kestrel's drain closes idle keep-alive connections while their clients may be
    /// sending the next request. Closing at once would meet that request with a reset (TCP) or EPIPE
    /// (Unix); reading on after the FIN until the client closes (a lingering close, as nginx does) lets
    /// it see a clean end of stream instead, which HTTP clients retry on a new connection: the successor's.
    /// </remarks>
    public override async ValueTask DisposeAsync()
    {
        try
        {
            if (LingersOnClose)
            {
                ((IDuplexPipe)this).Output.Complete();
                await LingerAsync().ConfigureAwait(false);
            }
            _connection.Input.Complete();
            ((IDuplexPipe)this).Output.Complete();
            await _connection.DisposeAsync().ConfigureAwait(false);
        }
        catch (PipeTransportException)
        {
            // A write or the half-close failed after Kestrel's last flush: Kestrel cannot act on it, and
            // the connection observer logged it (ConnectionError or ConnectionReset) when the send loop met it.
        }
        finally
        {
            _disposed?.TrySetResult();
        }
    }

    /// <summary>Reads and drops what the client still sends until it closes, resets, or <see cref="LingerTime"/> is over.</summary>
    private async Task LingerAsync()
    {
        using var timeout = new CancellationTokenSource(LingerTime);
        using var cancelRead = timeout.Token.UnsafeRegister(static input => ((PipeReader)input!).CancelPendingRead(), _connection.Input);
        try
        {
            while (!timeout.IsCancellationRequested)
            {
                ReadResult read = await _connection.Input.ReadAsync().ConfigureAwait(false);
                _connection.Input.AdvanceTo(read.Buffer.End);
                if (read.IsCompleted)
                {
                    return;
                }
            }
        }
        catch (Exception e) when (e is IOException or InvalidOperationException or OperationCanceledException or ConnectionAbortedException)
        {
            // A reset or an abort ends the linger as well as the client's close does.
        }
    }
}
