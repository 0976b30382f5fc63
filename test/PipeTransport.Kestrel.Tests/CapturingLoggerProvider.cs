using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;

namespace PipeTransport.Kestrel.Tests;

/// <summary>
/// Keeps every warning and error the server logs, so tests can assert Kestrel saw nothing unexpected,
/// and, from <see cref="PipeTransportLog.Category"/> at <see cref="TransportLevel"/> and above, the
/// transport's events with their ids.
/// </summary>
internal sealed class CapturingLoggerProvider(LogLevel transportLevel = LogLevel.Warning) : ILoggerProvider
{
    public ConcurrentQueue<string> Entries { get; } = new();

    /// <summary>The transport's log events (its category only).</summary>
    public ConcurrentQueue<LogEvent> TransportEvents { get; } = new();

    public LogLevel TransportLevel => transportLevel;

    private readonly List<(string EventName, TaskCompletionSource<LogEvent> Logged)> _waiters = [];

    /// <summary>Completes with the first transport event named <paramref name="eventName"/> (one logged before included).</summary>
    public Task<LogEvent> WaitForEventAsync(string eventName, CancellationToken cancellationToken)
    {
        var logged = new TaskCompletionSource<LogEvent>(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_waiters)
        {
            if (TransportEvents.FirstOrDefault(e => e.Id.Name == eventName) is { } past)
            {
                logged.SetResult(past);
            }
            else
            {
                _waiters.Add((eventName, logged));
            }
        }
        return logged.Task.WaitAsync(cancellationToken);
    }

    private void OnTransportEvent(LogEvent e)
    {
        lock (_waiters)
        {
            TransportEvents.Enqueue(e);
            foreach (var (_, logged) in _waiters.Where(w => w.EventName == e.Id.Name))
            {
                logged.TrySetResult(e);
            }
            _waiters.RemoveAll(w => w.Logged.Task.IsCompleted);
        }
    }

    public ILogger CreateLogger(string categoryName) => new Logger(this, categoryName);

    public IEnumerable<string> AtLeast(LogLevel level) =>
        Entries.Where(e => Enum.Parse<LogLevel>(e[..e.IndexOf(' ', StringComparison.Ordinal)]) >= level);

    public void Dispose()
    {
    }

    public sealed record LogEvent(LogLevel Level, EventId Id, string Message, Exception? Exception);

    private sealed class Logger(CapturingLoggerProvider provider, string category) : ILogger
    {
        private readonly bool _transport = category == PipeTransportLog.Category;

        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Warning || (_transport && logLevel >= provider.TransportLevel);

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (!IsEnabled(logLevel))
            {
                return;
            }

            var message = formatter(state, exception);
            provider.Entries.Enqueue($"{logLevel} {category}: {message} {exception}");
            if (_transport)
            {
                provider.OnTransportEvent(new LogEvent(logLevel, eventId, message, exception));
            }
        }
    }
}
