using PipeTransport.HandOff;

namespace PipeTransport.Bridge;

/// <summary>
/// --handoff PATH: at start the listener is taken over from the pipebridge serving PATH (when one does),
/// then this process commits (the predecessor stops accepting and lets its sessions end) and serves PATH
/// itself, offering its listener; <see cref="HandedOff"/> completes when a successor has committed.
/// </summary>
internal sealed class BridgeHandOff : IAsyncDisposable
{
    private readonly string _path;
    private readonly BridgeLog _log;
    private HandOffTakeover? _takeover;
    private HandOffServer? _server;

    private BridgeHandOff(string path, BridgeLog log, HandOffTakeover? takeover)
    {
        _path = path;
        _log = log;
        _takeover = takeover;
    }

    /// <summary>Completes when a successor took the listener over: stop accepting, finish the sessions, exit 0.</summary>
    public Task<HandOffCommitted> HandedOff => _server?.HandedOff ?? new TaskCompletionSource<HandOffCommitted>().Task;

    /// <summary>The predecessor's offer, or nothing on a first start (or when the predecessor went away mid-way).</summary>
    public static async Task<BridgeHandOff> TakeOverAsync(string path, BridgeLog log, CancellationToken cancellationToken)
    {
        HandOffTakeover? takeover = null;
        try
        {
            takeover = await HandOffClient.TakeOverAsync(path, cancellationToken).ConfigureAwait(false);
        }
        catch (PipeTransportException e)
        {
            // Binding anew fails loudly (EADDRINUSE) if the predecessor still listens.
            log.Warning($"--handoff {path}: taking over failed ({e.Message}); binding the listen address anew");
        }
        return new BridgeHandOff(path, log, takeover);
    }

    /// <summary>Binds ADDRESS1, or adopts the predecessor's socket for it.</summary>
    public FdListener Listen(AddressOpener opener, Address address, int fdHeadroom) => opener.Listen(address, fdHeadroom, _takeover);

    /// <summary>Lets the predecessor go, then offers <paramref name="listener"/> at the hand-off path.</summary>
    public async Task ServeAsync(Address address, FdListener listener, CancellationToken cancellationToken)
    {
        if (_takeover is { } takeover)
        {
            try
            {
                await takeover.CommitAsync(cancellationToken).ConfigureAwait(false);
                _log.Notice($"--handoff {_path}: took {address} over; the previous pipebridge stops accepting");
            }
            catch (PipeTransportException e)
            {
                // It dropped this hand-off (e.g. after its timeout) and serves on: do not serve next to it.
                throw new BridgeFailure(address, $"--handoff {_path}: the running pipebridge kept {address} ({e.Message})", e);
            }
        }
        try
        {
            _server = HandOffServer.Start(_path, new HandOffServerOptions
            {
                Events = e =>
                {
                    if (e.Kind != HandOffEventKind.Committed) _log.Warning($"--handoff {_path}: {e.Detail}");
                },
            });
        }
        catch (PipeTransportException e)
        {
            throw new BridgeFailure(address, $"--handoff {_path}: {e.Message}", e);
        }
        _server.Offer(AddressOpener.HandOffName(address), listener);
        _log.Notice($"--handoff {_path}: serving hand-off of {address}");
    }

    public async ValueTask DisposeAsync()
    {
        if (_server is not null)
        {
            await _server.DisposeAsync().ConfigureAwait(false);
            _server = null;
        }
        // Before a commit the predecessor resumes; after it, this only closes the hand-off connection.
        if (_takeover is not null)
        {
            await _takeover.DisposeAsync().ConfigureAwait(false);
            _takeover = null;
        }
    }
}
