using System.Net;
using System.Net.Sockets;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.Hosting;
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
/// other endpoint (named pipes, QUIC, custom ones) to the transports registered before it. With
/// <see cref="PipeTransportOptions.HandOff"/> it takes over a running predecessor's listeners instead of
/// binding them (see <see cref="HandOffCoordinator"/>).
/// </summary>
internal sealed class PipeTransportFactory : IConnectionListenerFactory, IConnectionListenerFactorySelector, IDisposable, IAsyncDisposable
{
    private readonly PipeTransportOptions _options;
    private readonly ILogger _logger;
    private readonly Lock _lock = new();
    private readonly HandOffCoordinator? _handOff;
    private ReactorGroup? _reactorGroup;
    private bool _disposed;

    /// <param name="options">The transport's options.</param>
    /// <param name="loggerFactory">Makes the <see cref="PipeTransportLog.Category"/> logger (none: nothing is logged).</param>
    /// <param name="lifetime">The host's lifetime: hand-off commits when it has started and stops it when handed off.</param>
    public PipeTransportFactory(IOptions<PipeTransportOptions> options, ILoggerFactory? loggerFactory = null, IHostApplicationLifetime? lifetime = null)
    {
        _options = options.Value;
        _logger = (loggerFactory ?? NullLoggerFactory.Instance).CreateLogger(PipeTransportLog.Category);
        if (_options.HandOff is { } handOff)
        {
            _handOff = new HandOffCoordinator(handOff, lifetime ?? throw new InvalidOperationException(
                $"PipeTransportOptions.HandOff ({handOff.Path}) needs the host's IHostApplicationLifetime: run the server in a host (WebApplication, Host)."), _logger);
        }
    }

    public bool CanBind(EndPoint endpoint) => endpoint is IPEndPoint or UnixDomainSocketEndPoint or FileHandleEndPoint or FifoEndPoint;

    public async ValueTask<IConnectionListener> BindAsync(EndPoint endpoint, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(endpoint);
        var connectionOptions = GetConnectionOptions();
        var dispatch = !_options.UnsafePreferInlineScheduling;
        switch (endpoint)
        {
            case FifoEndPoint fifo:
                if (_handOff is not null)
                {
                    await _handOff.GetTakeoverAsync().ConfigureAwait(false);
                }
                return FifoConnectionListener.Bind(
                    fifo, _options.UnixSocketFileMode, FileOwnership.Resolve(_options.UnixSocketOwner, _options.UnixSocketGroup, fifo.ToString()),
                    connectionOptions, dispatch, _logger, _handOff);
            case FileHandleEndPoint handle:
                return new SocketConnectionListener(
                    FdListener.FromHandle(new SafeFileHandle((nint)handle.FileHandle, ownsHandle: true), CreateListenerOptions(connectionOptions)),
                    connectionOptions.MemoryPool, dispatch, _logger);
            case IPEndPoint or UnixDomainSocketEndPoint:
                var listenerOptions = CreateListenerOptions(connectionOptions);
                if (_handOff is null)
                {
                    return new SocketConnectionListener(Bind(endpoint, listenerOptions), connectionOptions.MemoryPool, dispatch, _logger);
                }
                // The predecessor's socket when it offers one: it accepts here and there until the commit.
                string name = HandOffCoordinator.NameOf(endpoint)!;
                FdListener listener = await _handOff.TryAdoptAsync(name, listenerOptions).ConfigureAwait(false) ?? Bind(endpoint, listenerOptions);
                _handOff.Add(name, listener);
                return new SocketConnectionListener(listener, connectionOptions.MemoryPool, dispatch, _logger, _handOff);
            default:
                throw new NotSupportedException($"PipeTransport cannot listen on {endpoint.GetType().Name} '{endpoint}'.");
        }
    }

    /// <summary>
    /// The connection options as the user left them when they name a reactor group; otherwise a copy of
    /// them on the server's own group (the user's object is not changed).
    /// </summary>
    internal FdConnectionOptions GetConnectionOptions()
    {
        FdConnectionOptions options = _options.ConnectionOptions;
        return options.ReactorGroup is null ? WithReactorGroup(options.Clone(), GetReactorGroup()) : options;
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

    /// <summary>The server's own reactor group, started on first use.</summary>
    internal ReactorGroup GetReactorGroup()
    {
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            int count = _options.ReactorCount > 0 ? _options.ReactorCount : PipeTransportOptions.DefaultReactorCount;
            return _reactorGroup ??= new ReactorGroup(count, _options.ReactorsYieldBeforeWaiting, _options.ReactorPolling);
        }
    }

    public void Dispose() => DisposeAsync().AsTask().GetAwaiter().GetResult();

    /// <summary>Stops serving hand-off (after Kestrel has drained) and the server's own reactors.</summary>
    public async ValueTask DisposeAsync()
    {
        lock (_lock)
        {
            if (_disposed)
            {
                return;
            }
            _disposed = true;
        }
        if (_handOff is not null)
        {
            await _handOff.DisposeAsync().ConfigureAwait(false);
        }
        lock (_lock)
        {
            _reactorGroup?.Dispose();
            _reactorGroup = null;
        }
    }
}
