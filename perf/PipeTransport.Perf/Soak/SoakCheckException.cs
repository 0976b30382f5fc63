namespace PipeTransport.Perf.Soak;

/// <summary>A response that arrived but was wrong: always an unexpected error.</summary>
internal sealed class SoakCheckException(string message) : Exception(message);
