using System.Net;
using System.Net.Sockets;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Win32.SafeHandles;
using Mono.Unix.Native;
using PipeTransport.Endpoints;

namespace PipeTransport.Kestrel;

/// <summary>
/// Kestrel's entry point into the transport: binds the endpoints PipeTransport serves (TCP, Unix
/// sockets, inherited listening sockets, FIFO pairs) and, through <see cref="CanBind"/>, leaves every
/// other endpoint (named pipes, QUIC, custom ones) to the transports registered before it.
/// </summary>
internal sealed class PipeTransportFactory : IConnectionListenerFactory, IConnectionListenerFactorySelector, IDisposable
{
    private readonly PipeTransportOptions _options;
    private readonly ILogger _logger;
    private readonly Lock _lock = new();
    private ReactorGroup? _reactorGroup;
    private bool _disposed;

    /// <param name="options">The transport's options.</param>
    /// <param name="loggerFactory">Makes the <see cref="PipeTransportLog.Category"/> logger (none: nothing is logged).</param>
    public PipeTransportFactory(IOptions<PipeTransportOptions> options, ILoggerFactory? loggerFactory = null)
    {
        _options = options.Value;
        _logger = (loggerFactory ?? NullLoggerFactory.Instance).CreateLogger(PipeTransportLog.Category);
    }

    public bool CanBind(EndPoint endpoint) => endpoint is IPEndPoint or UnixDomainSocketEndPoint or FileHandleEndPoint or FifoEndPoint;

    public ValueTask<IConnectionListener> BindAsync(EndPoint endpoint, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(endpoint);
        var connectionOptions = GetConnectionOptions();
        var dispatch = !_options.UnsafePreferInlineScheduling;
        IConnectionListener listener = endpoint switch
        {
            FifoEndPoint fifo => FifoConnectionListener.Bind(
                fifo, _options.UnixSocketFileMode, FileOwnership.Resolve(_options.UnixSocketOwner, _options.UnixSocketGroup, fifo.ToString()),
                connectionOptions, dispatch, _logger),
            FileHandleEndPoint handle => new SocketConnectionListener(
                FdListener.FromHandle(new SafeFileHandle((nint)handle.FileHandle, ownsHandle: true), CreateListenerOptions(connectionOptions)),
                connectionOptions.MemoryPool, dispatch, _logger),
            IPEndPoint or UnixDomainSocketEndPoint => new SocketConnectionListener(
                Bind(endpoint, CreateListenerOptions(connectionOptions)), connectionOptions.MemoryPool, dispatch, _logger),
            _ => throw new NotSupportedException($"PipeTransport cannot listen on {endpoint.GetType().Name} '{endpoint}'."),
        };
        return new ValueTask<IConnectionListener>(listener);
    }

    /// <summary>
    /// The connection options as the user left them; when the reactor settings ask for the server's own
    /// group and no group was given, a copy of them on that group (the user's object is not changed).
    /// </summary>
    internal FdConnectionOptions GetConnectionOptions()
    {
        FdConnectionOptions options = _options.ConnectionOptions;
        return options.ReactorGroup is null && GetReactorGroup() is { } own ? WithReactorGroup(options.Clone(), own) : options;
    }

    /// <summary>
    /// Translates bind failures into what Kestrel's address binder understands: an address in use is
    /// Kestrel's <see cref="AddressInUseException"/> (it reports "address already in use" for the URL);
    /// a missing address family (no IPv6 here) is a <see cref="SocketException"/>, on which Kestrel falls
    /// back from <c>[::]</c> to <c>0.0.0.0</c> and from <c>localhost</c> to the loopback that exists. Both
    /// keep our exception, with its errno and endpoint, as the inner exception.
    /// </summary>
    private static FdListener Bind(EndPoint endpoint, FdListenerOptions options)
    {
        try
        {
            return FdListener.Bind(endpoint, options);
        }
        catch (PipeTransportException e) when (e.Errno == Errno.EADDRINUSE)
        {
            throw new AddressInUseException(e.Message, e);
        }
        catch (PipeTransportException e) when (e.Errno is Errno.EAFNOSUPPORT or Errno.EADDRNOTAVAIL && endpoint is IPEndPoint)
        {
            var error = e.Errno == Errno.EAFNOSUPPORT ? SocketError.AddressFamilyNotSupported : SocketError.AddressNotAvailable;
            throw new SocketException((int)error, e.Message);
        }
    }

    private FdListenerOptions CreateListenerOptions(FdConnectionOptions connectionOptions) => new()
    {
        Backlog = _options.Backlog,
        FdHeadroom = _options.FdHeadroom,
        UnixSocketMode = _options.UnixSocketFileMode,
        UnixSocketOwner = _options.UnixSocketOwner,
        UnixSocketGroup = _options.UnixSocketGroup,
        ConnectionOptions = connectionOptions,
        ReactorGroup = connectionOptions.ReactorGroup,
        Events = e => PipeTransportLog.ListenerEvent(_logger, e),
    };

    private static FdConnectionOptions WithReactorGroup(FdConnectionOptions options, ReactorGroup group)
    {
        options.ReactorGroup = group;
        return options;
    }

    /// <summary>The server's own reactor group, or null for the shared <see cref="ReactorGroup.Default"/>.</summary>
    internal ReactorGroup? GetReactorGroup()
    {
        if (_options.ReactorCount <= 0 && _options.ReactorsYieldBeforeWaiting && _options.ReactorPolling == ReactorPolling.Auto)
        {
            return null;
        }
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            int count = _options.ReactorCount > 0 ? _options.ReactorCount : Environment.ProcessorCount;
            return _reactorGroup ??= new ReactorGroup(count, _options.ReactorsYieldBeforeWaiting, _options.ReactorPolling);
        }
    }

    public void Dispose()
    {
        lock (_lock)
        {
            _disposed = true;
            _reactorGroup?.Dispose();
            _reactorGroup = null;
        }
    }
}
