/** The query of an endpoint that takes no parameters: any given is rejected (400) with its name. */
export class NoQueryDto {}
