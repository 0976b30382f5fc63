namespace PipeTransport.Tests;

/// <summary>
/// The test application's entry point (what Microsoft.Testing.Platform would generate), and with
/// <c>--child NAME ARGS</c> one of the <see cref="ChildPrograms"/>: a test runs this executable again
/// as a real process, under limits it cannot impose on itself.
/// </summary>
internal static class Program
{
    public static async Task<int> Main(string[] args)
    {
        if (args is ["--child", string name, .. string[] rest])
        {
            return await ChildPrograms.RunAsync(name, rest);
        }

        Microsoft.Testing.Platform.Builder.ITestApplicationBuilder builder = await Microsoft.Testing.Platform.Builder.TestApplication.CreateBuilderAsync(args);
        SelfRegisteredExtensions.AddSelfRegisteredExtensions(builder, args);
        using Microsoft.Testing.Platform.Builder.ITestApplication app = await builder.BuildAsync();
        return await app.RunAsync();
    }
}
