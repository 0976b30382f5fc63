namespace PipeTransport.Bridge;

internal static class BridgeRunner
{
    public static int Run(BridgeOptions options)
    {
        Console.Error.WriteLine(options);
        return 0;
    }
}
