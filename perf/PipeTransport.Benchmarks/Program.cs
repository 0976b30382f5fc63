using BenchmarkDotNet.Running;

namespace PipeTransport.Benchmarks;

/// <summary>
/// BenchmarkDotNet entry point. Quick run (about a minute on 2 cores):
/// <c>dotnet run -c Release --project perf/PipeTransport.Benchmarks -- --filter '*' --job short</c>.
/// </summary>
internal static class Program
{
    public static void Main(string[] args) => BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
}
