using System.Collections.Concurrent;
using System.Runtime.InteropServices;

namespace PipeTransport.Bridge;

/// <summary>Runs a parsed command line: opens the addresses, bridges them, maps the outcome to an exit code.</summary>
internal static class BridgeRunner
{
    /// <summary>--fork sets up at most this many connections at once (opens ADDRESS2, starts the engines).</summary>
    private const int MaxSettingUp = 16;

    /// <summary>The fds a connection needs besides the accepted one: ADDRESS2 (two for a split address) and two splice pipes.</summary>
    private const int FdsPerConnection = 6;

    /// <summary>
    /// The listener keeps room for the runtime and for the connections being set up: it checks the
    /// fds when it accepts, and those connections open theirs just after.
    /// </summary>
    internal const int ForkFdHeadroom = FdListenerOptions.DefaultFdHeadroom + MaxSettingUp * FdsPerConnection;

    public static int Run(BridgeOptions options) => RunAsync(options, new BridgeLog(StandardError.Writer, options.DebugLevel)).GetAwaiter().GetResult();

    private static async Task<int> RunAsync(BridgeOptions options, BridgeLog log)
    {
        var createdPaths = new CreatedPaths();
        using var stop = new CancellationTokenSource();
        int exitOnSignal = 0;
        void OnSignal(PosixSignalContext context, int exitCode)
        {
            // Stop through cancellation so connections close and created files are removed.
            context.Cancel = true;
            Interlocked.CompareExchange(ref exitOnSignal, exitCode, 0);
            stop.Cancel();
        }
        using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, c => OnSignal(c, ExitCodes.Interrupted));
        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => OnSignal(c, ExitCodes.Terminated));

        var opener = new AddressOpener(options, createdPaths, log);
        try
        {
            await using var stats = new TransferStats(options.Stats, log.Writer);
            try
            {
                if (options.Fork || options.HandOff is not null)
                    return await ServeAsync(options, opener, stats, log, stop.Token).ConfigureAwait(false);
                await BridgeOnceAsync(options, opener, stats, log, stop.Token).ConfigureAwait(false);
                return ExitCodes.Success;
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested)
            {
                return Volatile.Read(ref exitOnSignal);
            }
            catch (BridgeFailure failure)
            {
                log.Error(failure.Message);
                return ExitCodes.IoError;
            }
            catch (UsageException usage)
            {
                log.Error(usage.Message);
                return ExitCodes.Usage;
            }
        }
        finally
        {
            createdPaths.RemoveAll();
        }
    }

    private static async Task BridgeOnceAsync(BridgeOptions options, AddressOpener opener, TransferStats stats,
        BridgeLog log, CancellationToken cancellationToken)
    {
        // Both addresses open at once (a listener is bound before the other side's peer is awaited).
        (OpenedAddress? first, OpenedAddress? second) = await AddressOpener.OpenBothAsync(
            async ct => await opener.OpenAsync(options.First, options.FirstRole, ct).ConfigureAwait(false),
            async ct => await opener.OpenAsync(options.Second, options.SecondRole, ct).ConfigureAwait(false),
            cancellationToken).ConfigureAwait(false);
        await using OpenedAddress a = first!;
        await using OpenedAddress b = second!;
        // A session that a timeout ended does not wait for its children: disposing ends them.
        if (await BridgeSession.RunAsync(a, b, options, stats, log, peer: null, cancellationToken).ConfigureAwait(false))
        {
            await a.WaitForChildrenAsync(log, cancellationToken).ConfigureAwait(false);
            await b.WaitForChildrenAsync(log, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// --fork: accepts until stopped, each connection in its own session. With --handoff the listener may
    /// be a predecessor's, and is offered to a successor: once one took it, accepting ends and the sessions
    /// run to their end (exit 0). --handoff without --fork serves one session, offering the listener meanwhile.
    /// </summary>
    /// <returns>The exit code: a failed session fails only a single-session run.</returns>
    private static async Task<int> ServeAsync(BridgeOptions options, AddressOpener opener, TransferStats stats,
        BridgeLog log, CancellationToken cancellationToken)
    {
        Role secondRole = options.SecondRole;
        var sessions = new ConcurrentDictionary<Task, bool>();
        var active = new ConcurrentDictionary<FdConnection, bool>();
        int failures = 0;
        using var settingUp = new SemaphoreSlim(MaxSettingUp);
        await using BridgeHandOff? handOff = options.HandOff is { } path
            ? await BridgeHandOff.TakeOverAsync(path, log, cancellationToken).ConfigureAwait(false)
            : null;
        await using (FdListener listener = handOff?.Listen(opener, options.First, ForkFdHeadroom) ?? opener.Listen(options.First, ForkFdHeadroom))
        {
            if (handOff is not null)
            {
                await handOff.ServeAsync(options.First, listener, cancellationToken).ConfigureAwait(false);
                // Said when it happens, also in the middle of a single session (nothing awaits an accept then).
                _ = handOff.HandedOff.ContinueWith(t => log.Notice($"--handoff {options.HandOff}: handed {options.First} over to pid "
                    + $"{t.Result.Successor.ProcessId}; {sessions.Count} session(s) run to their end"),
                    CancellationToken.None, TaskContinuationOptions.OnlyOnRanToCompletion, TaskScheduler.Default);
            }
            bool handedOver = false;
            try
            {
                while (true)
                {
                    await settingUp.WaitAsync(cancellationToken).ConfigureAwait(false);
                    FdConnection? accepted = await listener.AcceptAsync(cancellationToken).ConfigureAwait(false);
                    if (accepted is null)
                    {
                        // Only a hand-over ends accepting without a stop (the listener is disposed below).
                        handedOver = handOff is not null;
                        break;
                    }
                    stats.ConnectionOpened();
                    active[accepted] = true;
                    Task session = ServeOneAsync(accepted);
                    sessions[session] = true;
                    _ = session.ContinueWith(t => sessions.TryRemove(t, out _), TaskScheduler.Default);
                    if (!options.Fork)
                    {
                        await session.ConfigureAwait(false);
                        break;
                    }
                }
            }
            finally
            {
                if (!handedOver && handOff?.HandedOff.IsCompleted != true)
                {
                    foreach (FdConnection connection in active.Keys) connection.Abort();
                }
                await Task.WhenAll(sessions.Keys).ConfigureAwait(false);
            }
        }
        return !options.Fork && Volatile.Read(ref failures) > 0 ? ExitCodes.IoError : ExitCodes.Success;

        async Task ServeOneAsync(FdConnection accepted)
        {
            await Task.Yield();
            string? peer = null;
            if (log.ShowsNotices)
            {
                peer = AddressOpener.PeerOf(accepted);
                log.Notice($"accepted connection from {peer} on {options.First}");
            }
            bool setUp = false;
            try
            {
                await using var first = new OpenedAddress(options.First, options.Forward ? accepted : null, options.First,
                    options.Backward ? accepted : null);
                await using OpenedAddress second = await opener.OpenAsync(options.Second, secondRole, cancellationToken).ConfigureAwait(false);
                // The engines make their fds (splice pipes) before their first wait.
                Task<bool> session = BridgeSession.RunAsync(first, second, options, stats, log, peer, cancellationToken);
                settingUp.Release();
                setUp = true;
                if (await session.ConfigureAwait(false))
                    await second.WaitForChildrenAsync(log, cancellationToken).ConfigureAwait(false);
            }
            catch (BridgeFailure failure)
            {
                // One connection's failure is reported; the listener keeps serving.
                Interlocked.Increment(ref failures);
                log.Error(failure.Message);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
            }
            catch (Exception e)
            {
                Interlocked.Increment(ref failures);
                log.Error($"{options.First}: {e.Message}");
            }
            finally
            {
                if (!setUp)
                    settingUp.Release();
                active.TryRemove(accepted, out _);
                stats.ConnectionClosed();
            }
        }
    }
}
