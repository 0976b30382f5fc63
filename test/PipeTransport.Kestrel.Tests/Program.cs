using System.Globalization;
using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace PipeTransport.Kestrel.Tests;

/// <summary>
/// The test application's entry point (what Microsoft.Testing.Platform would generate), and with
/// <c>--child kestrel pipe|sockets HEADROOM</c> a small server a test runs as a real process, under
/// limits it cannot impose on itself.
/// </summary>
internal static class Program
{
    public static async Task<int> Main(string[] args)
    {
        if (args is ["--child", "kestrel", string transport, string headroom])
        {
            return await KestrelServerAsync(transport == "pipe", int.Parse(headroom, CultureInfo.InvariantCulture));
        }

        Microsoft.Testing.Platform.Builder.ITestApplicationBuilder builder = await Microsoft.Testing.Platform.Builder.TestApplication.CreateBuilderAsync(args);
        SelfRegisteredExtensions.AddSelfRegisteredExtensions(builder, args);
        using Microsoft.Testing.Platform.Builder.ITestApplication app = await builder.BuildAsync();
        return await app.RunAsync();
    }

    /// <summary>
    /// Answers <c>GET /</c> with "hello" on 127.0.0.1 (any port), over PipeTransport or Kestrel's
    /// Sockets transport; prints <c>listening PORT</c>, logs warnings and errors (and the transport's
    /// information) to stderr, and stops
    /// when stdin closes.
    /// </summary>
    private static async Task<int> KestrelServerAsync(bool pipeTransport, int headroom)
    {
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions
        {
            ApplicationName = "PipeTransport.Kestrel.Tests",
            Args = ["--hostBuilder:reloadConfigOnChange=false"],
        });
        builder.Logging.ClearProviders();
        builder.Logging.AddSimpleConsole(o => o.SingleLine = true).SetMinimumLevel(LogLevel.Warning)
            .AddFilter(PipeTransportLog.Category, LogLevel.Information);
        builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, 0));
        if (pipeTransport)
        {
            builder.WebHost.UsePipeTransport(o => o.FdHeadroom = headroom);
        }

        await using WebApplication app = builder.Build();
        app.MapGet("/", () => "hello");
        await app.StartAsync();
        string address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        Console.WriteLine($"listening {new Uri(address).Port}");
        var stdinClosed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        new Thread(() =>
        {
            Console.In.ReadToEnd();
            stdinClosed.SetResult();
        })
        { IsBackground = true }.Start();
        await stdinClosed.Task;
        await app.StopAsync();
        return 0;
    }
}
