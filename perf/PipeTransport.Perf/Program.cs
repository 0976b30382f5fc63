using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using PipeTransport.Perf.Children;
using PipeTransport.Perf.Harness;
using PipeTransport.Perf.Kestrel;
using PipeTransport.Perf.Scenarios;
using PipeTransport.Perf.Soak;

namespace PipeTransport.Perf;

/// <summary>
/// The side-by-side perf harness. Without a child mode it runs the selected scenarios and prints
/// markdown tables on stdout (progress on stderr); the child modes (<c>writer</c>, <c>reader</c>,
/// <c>tcp-writer</c>, <c>unix-reader</c>, <c>idle-server</c>, <c>idle-clients</c>, <c>kestrel-server</c>, <c>soak-server</c>,
/// <c>soak-client</c>) are the separate processes the scenarios and the <c>soak</c> command start.
/// </summary>
internal static class Program
{
    public static async Task<int> Main(string[] args)
    {
        if (args.Length > 0)
        {
            var inv = CultureInfo.InvariantCulture;
            switch (args[0])
            {
                case "writer" when args.Length == 6:
                    return FifoWriter.Run(args[1], long.Parse(args[2], inv), int.Parse(args[3], inv), int.Parse(args[4], inv), int.Parse(args[5], inv));
                case "reader" when args.Length == 4:
                    return FifoReader.Run(args[1], int.Parse(args[2], inv), int.Parse(args[3], inv));
                case "fresh-reader" when args.Length == 4:
                    return await FreshFifoReader.RunAsync(args[1], args[2], int.Parse(args[3], inv));
                case "tcp-writer" when args.Length == 4:
                    return TcpWriter.Run(long.Parse(args[1], inv), int.Parse(args[2], inv), int.Parse(args[3], inv));
                case "unix-reader" when args.Length == 3:
                    return UnixReader.Run(args[1], int.Parse(args[2], inv));
                case "idle-server" when args.Length == 3:
                    return await IdleServer.RunAsync(args[1], int.Parse(args[2], inv));
                case "idle-clients" when args.Length == 3:
                    return await IdleClients.RunAsync(int.Parse(args[1], inv), int.Parse(args[2], inv));
                case "kestrel-server" when args.Length == 2:
                    return await KestrelServer.RunAsync(args[1]);
                case "soak-server" when args.Length == 4:
                    return await SoakServer.RunAsync(args[1], args[2], args[3]);
                case "soak-client" when args.Length == 2:
                    return await SoakClient.RunAsync(int.Parse(args[1], inv));
            }
        }

        return await BuildCommand(args).Parse(args).InvokeAsync();
    }

    private static RootCommand BuildCommand(string[] args)
    {
        var scenarios = new Argument<string[]>("scenario")
        {
            Description = "Scenarios or groups to run: " + string.Join(", ", ScenarioCatalog.All.Select(s => s.Name))
                + "; groups: " + string.Join(", ", ScenarioCatalog.Groups.Keys) + " (default: fifo)",
            Arity = ArgumentArity.ZeroOrMore,
        };
        var size = new Option<string>("--size") { Description = "Bytes per throughput run (1GiB, 256MiB, ...)", DefaultValueFactory = _ => "1GiB" };
        var runs = new Option<int>("--runs") { Description = "Timed runs per variant, alternating between variants", DefaultValueFactory = _ => 3 };
        var buffer = new Option<string>("--buffer") { Description = "Read/write buffer size of every variant and of the writer process", DefaultValueFactory = _ => "64KiB" };
        var pipeSize = new Option<string>("--pipe-size") { Description = "F_SETPIPE_SZ for every FIFO (0: kernel default, 64 KiB; max /proc/sys/fs/pipe-max-size)", DefaultValueFactory = _ => "0" };
        var roundTrips = new Option<int>("--round-trips") { Description = "Round trips per ping-pong run", DefaultValueFactory = _ => 20_000 };
        var connections = new Option<int>("--connections") { Description = "Idle connections per idle-memory run", DefaultValueFactory = _ => 10_000 };
        var noWarmup = new Option<bool>("--no-warmup") { Description = "Skip the untimed warm-up run of each variant" };
        var timeout = new Option<int>("--timeout") { Description = "Seconds one run may take before the scenario fails", DefaultValueFactory = _ => 300 };
        var extra = new Option<bool>("--extra") { Description = "Also run the tuning variants (e.g. PipeCapacity = 0, UseSplice = false, inline application scheduling, other reactor modes, the Kestrel transport options)" };
        var bridgeBlock = new Option<string>("--bridge-block") { Description = "pipebridge's -b in the bridge scenarios (0: its default)", DefaultValueFactory = _ => "0" };
        var variant = new Option<string[]>("--variant") { Description = "Only run variants whose name contains this (repeatable; for profiling one variant)" };
        var wrkDuration = new Option<int>("--wrk-duration") { Description = "Seconds per timed wrk run (Kestrel scenarios)", DefaultValueFactory = _ => 5 };
        var wrkWarmup = new Option<int>("--wrk-warmup") { Description = "Seconds of each Kestrel server's untimed warm-up wrk run", DefaultValueFactory = _ => PerfSettings.DefaultWrkWarmupSeconds };

        var command = new RootCommand("PipeTransport side-by-side perf harness: each scenario against its baselines in one process run, "
            + "runs alternating between variants, a markdown table with the median, min, max and ratios on stdout.")
        {
            scenarios, size, runs, buffer, pipeSize, roundTrips, connections, noWarmup, timeout, variant, extra, bridgeBlock,
        };
        command.Options.Add(wrkDuration);
        command.Options.Add(wrkWarmup);
        command.Subcommands.Add(BuildSoakCommand());
        command.SetAction(async (parse, ct) =>
        {
            var settings = new PerfSettings(
                ByteSize.Parse(parse.GetValue(size)!),
                Math.Max(1, parse.GetValue(runs)),
                checked((int)ByteSize.Parse(parse.GetValue(buffer)!)),
                checked((int)ByteSize.Parse(parse.GetValue(pipeSize)!)),
                parse.GetValue(roundTrips),
                parse.GetValue(connections),
                !parse.GetValue(noWarmup),
                TimeSpan.FromSeconds(parse.GetValue(timeout)),
                parse.GetValue(variant) ?? [],
                parse.GetValue(extra),
                checked((int)ByteSize.Parse(parse.GetValue(bridgeBlock)!)))
            {
                WrkSeconds = Math.Max(1, parse.GetValue(wrkDuration)),
                WrkWarmupSeconds = Math.Max(1, parse.GetValue(wrkWarmup)),
            };
            string[] names = parse.GetValue(scenarios) is { Length: > 0 } given ? given : ["fifo"];
            return await RunAsync(ScenarioCatalog.Select(names), settings, args);
        });
        return command;
    }

    private static Command BuildSoakCommand()
    {
        var minutes = new Option<double>("--minutes") { Description = "How long the cycles run", DefaultValueFactory = _ => 30 };
        var output = new Option<string>("--out") { Description = "Directory for soak.csv, soak-checkpoints.csv, soak.png and soak-summary.md", DefaultValueFactory = _ => "perf/results" };
        var fdLimit = new Option<int>("--fd-limit") { Description = "RLIMIT_NOFILE of the server process (prlimit --nofile=N:N)", DefaultValueFactory = _ => 512 };
        var fifoRate = new Option<int>("--fifo-rate") { Description = "MiB/s streamed through the server's FIFO bridge", DefaultValueFactory = _ => 32 };
        var transport = new Option<string>("--transport") { Description = "Kestrel's transport: pipe (UsePipeTransport()) or sockets (its default, for comparison)", DefaultValueFactory = _ => KestrelTransports.Pipe };
        transport.AcceptOnlyFromAmong(KestrelTransports.Pipe, KestrelTransports.Sockets);
        var soak = new Command("soak", "Soak: Kestrel with UsePipeTransport() and a FIFO bridge in one server process under steady and churning "
            + "wrk loads, a chaos mix of aborts and killed clients, and periodic fd-limit periods; samples its RSS, fds, threads and "
            + "managed heap every second, writes a CSV and a plot, exits 1 if a series drifts more than 10% or an unexpected error occurs.")
        {
            minutes, output, fdLimit, fifoRate, transport,
        };
        soak.SetAction(async (parse, ct) => await SoakRun.RunAsync(new SoakSettings(
            TimeSpan.FromMinutes(parse.GetValue(minutes)),
            parse.GetValue(output)!,
            parse.GetValue(fdLimit),
            SteadyConnections: 32,
            ChurnConnections: 16,
            FifoBytesPerSecond: Math.Max(1, parse.GetValue(fifoRate)) * (double)(1 << 20),
            Transport: parse.GetValue(transport)!)));
        return soak;
    }

    private static async Task<int> RunAsync(IReadOnlyList<IScenario> scenarios, PerfSettings settings, string[] args)
    {
        if (Debugger.IsAttached || typeof(Program).Assembly.GetCustomAttributes(typeof(DebuggableAttribute), false)
                .OfType<DebuggableAttribute>().Any(d => d.IsJITOptimizerDisabled))
        {
            Console.Error.WriteLine("warning: this is a Debug build; measure with -c Release");
        }

        var workDirectory = Directory.CreateTempSubdirectory("ptperf-").FullName;
        try
        {
            Console.Out.WriteLine(MarkdownReport.Header(settings, "PipeTransport.Perf " + string.Join(' ', args)));
            var results = new List<ScenarioResult>();
            foreach (var scenario in scenarios)
            {
                var result = await ScenarioRunner.RunAsync(scenario, settings, workDirectory);
                results.Add(result);
                Console.Out.Write(MarkdownReport.Table(result));
                Console.Out.Flush();
            }

            Console.Out.Write(MarkdownReport.Summary(results));
            return 0;
        }
        finally
        {
            Directory.Delete(workDirectory, recursive: true);
        }
    }
}
