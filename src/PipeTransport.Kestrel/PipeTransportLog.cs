using Microsoft.Extensions.Logging;
using Mono.Unix.Native;

namespace PipeTransport.Kestrel;

/// <summary>
/// The transport's log events. The connection events are those of Kestrel's Sockets transport
/// (<c>SocketsLog</c>), with its event ids, names, levels and messages, so filters and dashboards
/// written for it keep working; accept failures and the fd limit (ids 20-22) and zero-downtime hand-off (ids 23-29) are this transport's own.
/// The per-connection events are Debug: a connection id is formatted only when they are enabled.
/// </summary>
internal static partial class PipeTransportLog
{
    /// <summary>The logger category, next to Kestrel's own transports (<c>...Transport.Sockets</c>, <c>...Transport.NamedPipes</c>).</summary>
    public const string Category = "Microsoft.AspNetCore.Server.Kestrel.Transport.PipeTransport";

    public static void ConnectionPause(ILogger logger, PipeConnectionContext connection)
    {
        if (logger.IsEnabled(LogLevel.Debug))
        {
            ConnectionPauseCore(logger, connection.ConnectionId);
        }
    }

    public static void ConnectionResume(ILogger logger, PipeConnectionContext connection)
    {
        if (logger.IsEnabled(LogLevel.Debug))
        {
            ConnectionResumeCore(logger, connection.ConnectionId);
        }
    }

    public static void ConnectionReadFin(ILogger logger, PipeConnectionContext connection)
    {
        if (logger.IsEnabled(LogLevel.Debug))
        {
            ConnectionReadFinCore(logger, connection.ConnectionId);
        }
    }

    public static void ConnectionWriteFin(ILogger logger, PipeConnectionContext connection, string reason)
    {
        if (logger.IsEnabled(LogLevel.Debug))
        {
            ConnectionWriteFinCore(logger, connection.ConnectionId, reason);
        }
    }

    public static void ConnectionError(ILogger logger, PipeConnectionContext connection, Exception error)
    {
        if (logger.IsEnabled(LogLevel.Debug))
        {
            ConnectionErrorCore(logger, connection.ConnectionId, error);
        }
    }

    public static void ConnectionReset(ILogger logger, PipeConnectionContext connection)
    {
        if (logger.IsEnabled(LogLevel.Debug))
        {
            ConnectionResetCore(logger, connection.ConnectionId);
        }
    }

    /// <summary>
    /// What a listener reports at the fd limit: an accept that failed (Warning when the process or the
    /// system ran out of a resource, Debug when one client's connection failed before it was taken),
    /// and when accepting held back and resumed.
    /// </summary>
    public static void ListenerEvent(ILogger logger, FdListenerEvent e)
    {
        switch (e.Kind)
        {
            case FdListenerEventKind.AcceptError:
                var level = e.Errno is Errno.EMFILE or Errno.ENFILE or Errno.ENOBUFS or Errno.ENOMEM ? LogLevel.Warning : LogLevel.Debug;
                if (logger.IsEnabled(level))
                {
                    AcceptFailedCore(logger, level, e.Listener, e.Errno);
                }
                break;
            case FdListenerEventKind.FdLimitEntered:
                // Errno 0: accept4 did not fail, the listener keeps FdHeadroom fds free.
                FdLimitEnteredCore(logger, e.Listener, e.Errno == 0 ? "too few free" : e.Errno.ToString());
                break;
            case FdListenerEventKind.FdLimitLeft:
                FdLimitLeftCore(logger, e.Listener, e.Duration);
                break;
        }
    }

    [LoggerMessage(4, LogLevel.Debug, @"Connection id ""{ConnectionId}"" paused.", EventName = "ConnectionPause", SkipEnabledCheck = true)]
    private static partial void ConnectionPauseCore(ILogger logger, string connectionId);

    [LoggerMessage(5, LogLevel.Debug, @"Connection id ""{ConnectionId}"" resumed.", EventName = "ConnectionResume", SkipEnabledCheck = true)]
    private static partial void ConnectionResumeCore(ILogger logger, string connectionId);

    [LoggerMessage(6, LogLevel.Debug, @"Connection id ""{ConnectionId}"" received FIN.", EventName = "ConnectionReadFin", SkipEnabledCheck = true)]
    private static partial void ConnectionReadFinCore(ILogger logger, string connectionId);

    [LoggerMessage(7, LogLevel.Debug, @"Connection id ""{ConnectionId}"" sending FIN because: ""{Reason}""", EventName = "ConnectionWriteFin", SkipEnabledCheck = true)]
    private static partial void ConnectionWriteFinCore(ILogger logger, string connectionId, string reason);

    [LoggerMessage(14, LogLevel.Debug, @"Connection id ""{ConnectionId}"" communication error.", EventName = "ConnectionError", SkipEnabledCheck = true)]
    private static partial void ConnectionErrorCore(ILogger logger, string connectionId, Exception ex);

    [LoggerMessage(19, LogLevel.Debug, @"Connection id ""{ConnectionId}"" reset.", EventName = "ConnectionReset", SkipEnabledCheck = true)]
    private static partial void ConnectionResetCore(ILogger logger, string connectionId);

    [LoggerMessage(EventId = 20, Message = @"Accepting a connection on {EndPoint} failed with {Errno}; the listener keeps accepting.", EventName = "AcceptFailed", SkipEnabledCheck = true)]
    private static partial void AcceptFailedCore(ILogger logger, LogLevel level, string endPoint, Errno errno);

    [LoggerMessage(21, LogLevel.Warning, @"Out of file descriptors ({Cause}): accepting on {EndPoint} holds back until connections close.", EventName = "FdLimitEntered")]
    private static partial void FdLimitEnteredCore(ILogger logger, string endPoint, string cause);

    [LoggerMessage(22, LogLevel.Information, @"Accepting on {EndPoint} resumed after {Duration} at the file descriptor limit.", EventName = "FdLimitLeft")]
    private static partial void FdLimitLeftCore(ILogger logger, string endPoint, TimeSpan duration);

    /// <summary>A hand-off server event: a refused peer or an aborted hand-off (the commit is <see cref="HandOffServed"/>).</summary>
    public static void HandOffEvent(ILogger logger, string path, HandOff.HandOffEvent e)
    {
        switch (e.Kind)
        {
            case HandOff.HandOffEventKind.Refused:
                HandOffRefusedCore(logger, path, e.Detail);
                break;
            case HandOff.HandOffEventKind.Aborted:
                HandOffAbortedCore(logger, path, e.Detail, e.Error);
                break;
        }
    }

    public static void HandOffTaken(ILogger logger, string path, IReadOnlyCollection<string> names) =>
        HandOffTakenCore(logger, names.Count, string.Join(", ", names), path);

    public static void HandOffServing(ILogger logger, string path, IReadOnlyCollection<string> names) =>
        HandOffServingCore(logger, path, string.Join(", ", names));

    public static void HandOffServed(ILogger logger, string path, int processId, IReadOnlyCollection<string> names) =>
        HandOffServedCore(logger, string.Join(", ", names), processId, path);

    [LoggerMessage(23, LogLevel.Information, @"Took over {Count} listener(s) [{Names}] from the previous instance through {Path}; it stops accepting and drains.", EventName = "HandOffTaken")]
    private static partial void HandOffTakenCore(ILogger logger, int count, string names, string path);

    [LoggerMessage(24, LogLevel.Information, @"Serving hand-off at {Path} for [{Names}]: a new instance started with this path takes them over.", EventName = "HandOffServing")]
    private static partial void HandOffServingCore(ILogger logger, string path, string names);

    [LoggerMessage(25, LogLevel.Information, @"Handed off [{Names}] to process {ProcessId} through {Path}; stopping the application to drain its requests.", EventName = "HandOffServed")]
    private static partial void HandOffServedCore(ILogger logger, string names, int processId, string path);

    [LoggerMessage(26, LogLevel.Warning, @"Hand-off through {Path} failed: {Reason}.", EventName = "HandOffFailed")]
    public static partial void HandOffFailed(ILogger logger, string path, string reason, Exception error);

    [LoggerMessage(27, LogLevel.Error, @"Cannot serve hand-off at {Path}: this instance cannot be replaced without downtime.", EventName = "HandOffServeFailed")]
    public static partial void HandOffServeFailed(ILogger logger, string path, Exception error);

    [LoggerMessage(28, LogLevel.Warning, @"Hand-off at {Path} refused a peer: {Detail}.", EventName = "HandOffRefused")]
    private static partial void HandOffRefusedCore(ILogger logger, string path, string detail);

    [LoggerMessage(29, LogLevel.Warning, @"Hand-off at {Path} aborted, this instance keeps serving: {Detail}.", EventName = "HandOffAborted")]
    private static partial void HandOffAbortedCore(ILogger logger, string path, string detail, Exception? error);
}
