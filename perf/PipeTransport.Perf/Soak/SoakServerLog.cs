using Microsoft.Extensions.Logging;

namespace PipeTransport.Perf.Soak;

/// <summary>
/// The soak server's logger: Kestrel's and the transport's warnings and errors become <c>log</c> lines
/// on stdout, where the harness counts them (an error fails the soak; a client's reset is logged below
/// warning level and never shows here).
/// </summary>
internal sealed class SoakServerLog : ILoggerProvider
{
    public ILogger CreateLogger(string categoryName) => new Logger(categoryName);

    public void Dispose()
    {
    }

    private sealed class Logger(string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Warning;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (!IsEnabled(logLevel))
            {
                return;
            }

            string message = formatter(state, exception) + (exception is null ? "" : " " + exception);
            SoakServer.Say($"log {logLevel} {category} {eventId.Name ?? eventId.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)} {SoakServer.OneLine(message)}");
        }
    }
}
