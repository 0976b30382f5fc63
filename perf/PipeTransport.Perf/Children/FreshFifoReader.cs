using System.Diagnostics;
using PipeTransport.Perf.Data;
using PipeTransport.Perf.Scenarios;

namespace PipeTransport.Perf.Children;

/// <summary>
/// Child mode <c>fresh-reader METHOD PATH BUFFER</c>, run with a default runtimeconfig (no tiering or GC
/// settings: what a user's process has): reads the FIFO at PATH to its end with METHOD, hashing every byte.
/// Prints "ready" before opening and "done END_TIMESTAMP HASH BYTES" at EOF.
/// </summary>
internal static class FreshFifoReader
{
    public static async Task<int> RunAsync(string method, string path, int bufferSize)
    {
        var hash = new StreamHash();
        Console.Out.WriteLine("ready");
        Console.Out.Flush();
        long end = await FifoReadScenario.ReadAsync(method, path, hash, bufferSize, CancellationToken.None);
        Console.Out.WriteLine($"done {end} {hash.Finish():x16} {hash.Length}");
        return 0;
    }
}
