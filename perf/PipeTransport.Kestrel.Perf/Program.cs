using PipeTransport.Kestrel.Perf;

// serve: one app on one transport (a child process of bench).
// bench: both transports side by side, wrk at 32 and 256 connections, median of alternating runs, idle memory.
return args.FirstOrDefault() switch
{
    "serve" => await PerfServer.RunAsync(args[1..]),
    "bench" => await Bench.RunAsync(args[1..]),
    _ => Usage(),
};

static int Usage()
{
    Console.Error.WriteLine("""
        usage: PipeTransport.Kestrel.Perf serve --transport sockets|pipe|pipe-inline --port N
               PipeTransport.Kestrel.Perf bench [--duration 10] [--runs 3] [--connections 32,256] [--wrk-threads 1]
                                                [--transports sockets,pipe,pipe-inline] [--idle 5000] [--markdown FILE]
        """);
    return 2;
}
