namespace PipeTransport.Bridge;

/// <summary>A command-line mistake: exit code 2, one line on stderr.</summary>
internal sealed class UsageException(string message) : Exception(message);
