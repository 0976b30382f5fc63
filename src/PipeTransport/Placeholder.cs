namespace PipeTransport;
/// <summary>x</summary>
public static class Placeholder { }
