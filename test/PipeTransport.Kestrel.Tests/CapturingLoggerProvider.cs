using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;

namespace PipeTransport.Kestrel.Tests;

/// <summary>Keeps every warning and error the server logs, so tests can assert Kestrel saw nothing unexpected.</summary>
internal sealed class CapturingLoggerProvider : ILoggerProvider
{
    public ConcurrentQueue<string> Entries { get; } = new();

    public ILogger CreateLogger(string categoryName) => new Logger(this, categoryName);

    public IEnumerable<string> AtLeast(LogLevel level) =>
        Entries.Where(e => Enum.Parse<LogLevel>(e[..e.IndexOf(' ', StringComparison.Ordinal)]) >= level);

    public void Dispose()
    {
    }

    private sealed class Logger(CapturingLoggerProvider provider, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Warning;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (IsEnabled(logLevel))
            {
                provider.Entries.Enqueue($"{logLevel} {category}: {formatter(state, exception)} {exception}");
            }
        }
    }
}
